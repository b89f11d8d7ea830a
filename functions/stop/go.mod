module optio.dev/functions/stop

go 1.24.0
