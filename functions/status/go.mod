module optio.dev/functions/status

go 1.24.0
