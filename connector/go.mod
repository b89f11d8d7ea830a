module optio.dev/connector

go 1.24.0
