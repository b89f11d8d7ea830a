module optio.dev/local

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/gorilla/mux v1.8.0
	github.com/openfaas/faas-provider v0.19.1
	github.com/openfaas/templates-sdk/go-http v0.0.0-20220408082716-5981c545cb03
	github.com/prometheus/client_golang v1.25.0
	gopkg.in/yaml.v3 v3.0.1
	optio.dev/functions/process v0.0.0-00010101000000-000000000000
	optio.dev/functions/run v0.0.0-00010101000000-000000000000
	optio.dev/functions/schedule v0.0.0-00010101000000-000000000000
	optio.dev/functions/status v0.0.0-00010101000000-000000000000
	optio.dev/functions/stop v0.0.0-00010101000000-000000000000
	optio.dev/optio v0.0.0-00010101000000-000000000000
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/elastic/elastic-transport-go/v8 v8.9.0 // indirect
	github.com/elastic/go-elasticsearch/v8 v8.19.7 // indirect
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/rabbitmq/amqp091-go v1.17.0 // indirect
	github.com/redis/go-redis/v9 v9.22.0 // indirect
	go.opentelemetry.io/otel v1.29.0 // indirect
	go.opentelemetry.io/otel/metric v1.29.0 // indirect
	go.opentelemetry.io/otel/trace v1.29.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace optio.dev/optio => ../optio

replace optio.dev/functions/run => ../functions/run

replace optio.dev/functions/stop => ../functions/stop

replace optio.dev/functions/status => ../functions/status

replace optio.dev/functions/schedule => ../functions/schedule

replace optio.dev/functions/process => ../functions/process
