module optio.dev/functions/status

go 1.24.0

require (
	github.com/openfaas/templates-sdk/go-http v0.0.0-20220408082716-5981c545cb03
	optio.dev/optio v0.0.0-00010101000000-000000000000
)

replace optio.dev/optio => ./optio
