module optio.dev/functions/process

go 1.24.0
