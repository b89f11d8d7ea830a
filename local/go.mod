module optio.dev/local

go 1.24.0
