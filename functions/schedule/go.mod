module optio.dev/functions/schedule

go 1.24.0
