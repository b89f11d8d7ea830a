module optio.dev/web

go 1.24.0
