module optio.dev/functions/schedule

go 1.24.0

require (
	github.com/openfaas/templates-sdk/go-http v0.0.0-20220408082716-5981c545cb03
	optio.dev/optio v0.0.0-00010101000000-000000000000
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/rabbitmq/amqp091-go v1.17.0 // indirect
	github.com/redis/go-redis/v9 v9.22.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.30.0 // indirect
)

replace optio.dev/optio => ./optio
