//go:build tools

// Package gateway pins the OpenFaaS gateway for the local runtime. The gateway
// needs a newer faas-provider than the rest of the workspace, so it lives in its
// own module outside go.work and is built with GOWORK=off:
//
//	GOWORK=off go build -o ../../bin/gateway github.com/openfaas/faas/gateway
package gateway

import _ "github.com/openfaas/faas/gateway"
