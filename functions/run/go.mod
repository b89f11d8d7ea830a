module optio.dev/functions/run

go 1.24.0
