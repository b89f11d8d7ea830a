package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/openfaas/connector-sdk/types"
)

// userAgent identifies the connector to the gateway and the functions.
const userAgent = "optio/connector"

// NewTransport returns the one transport shared by every request the
// connector makes: it keeps connections to the gateway alive and keeps
// enough idle ones for every invocation in flight, plus the cron firings
// and the topic refresh, so that ~2000 invocations a second reuse
// connections instead of opening new ones.
func NewTransport(prefetch int) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          2*prefetch + 32,
		MaxIdleConnsPerHost:   prefetch + 16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// NewInvoker returns a connector-sdk Invoker for one worker: the Invoker
// reports on an unbuffered channel of its own, so each worker has one,
// all sharing client.
func NewInvoker(gatewayURL string, client *http.Client) *types.Invoker {
	inv := types.NewInvoker(gatewayURL+"/function", client, "", false, false, userAgent)
	inv.UserAgent = userAgent // NewInvoker drops its userAgent argument
	return inv
}

// invokeTopic invokes, through inv, every function tm subscribes to topic
// and returns one response per function invoked, in order. A non-2xx answer
// is a response with its Status and no Error; an empty result means no
// function is subscribed.
func invokeTopic(ctx context.Context, inv *types.Invoker, tm *types.TopicMap, topic string, body []byte, h http.Header) []types.InvokerResponse {
	done := make(chan struct{})
	go func() {
		defer close(done)
		inv.InvokeWithContext(ctx, tm, topic, &body, h)
	}()
	var out []types.InvokerResponse
	for {
		select {
		case r := <-inv.Responses:
			out = append(out, r)
		case <-done:
			// every send on the unbuffered Responses happened before done closed
			return out
		}
	}
}

// unreachable reports whether err means the request never reached the
// gateway (it could not be dialled), so the message is not to blame.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// post invokes one function with an empty body, for the cron trigger, and
// returns the status.
func post(ctx context.Context, client *http.Client, gatewayURL, function string, h http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/function/"+function, http.NoBody)
	if err != nil {
		return 0, fmt.Errorf("build request for %s: %w", function, err)
	}
	req.Header = h.Clone()
	req.Header.Set("User-Agent", userAgent)
	res, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("invoke %s: %w", function, err)
	}
	defer res.Body.Close()
	// drain so that the connection is reused
	if _, err := io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)); err != nil {
		return res.StatusCode, fmt.Errorf("read answer of %s: %w", function, err)
	}
	return res.StatusCode, nil
}
