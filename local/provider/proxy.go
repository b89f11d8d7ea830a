package provider

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

type targetKey struct{}

// target is where one call goes.
type target struct {
	host string // 127.0.0.1:PORT of the replica
	path string // the path after /function/NAME
}

// MakeProxyHandler forwards /function/NAME[/PATH] to a ready replica of NAME,
// round robin, over keep-alive connections shared by all calls.
func MakeProxyHandler(rt *Runtime) http.HandlerFunc {
	transport := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConnsPerHost:   rt.cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(targetKey{}).(target)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.host
			pr.Out.URL.Path = t.path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:  transport,
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the caller went away
			}
			name := mux.Vars(r)["name"]
			rt.log.Warn("calling function failed", "function", name, "error", err)
			http.Error(w, "calling function "+name+": "+err.Error(), http.StatusBadGateway)
		},
	}
	return func(w http.ResponseWriter, r *http.Request) {
		vars := mux.Vars(r)
		rep, host, err := rt.pick(r.Context().Done(), vars["name"])
		if err != nil {
			writeError(w, err)
			return
		}
		defer rep.release()
		ctx := context.WithValue(r.Context(), targetKey{}, target{host: host, path: "/" + vars["params"]})
		proxy.ServeHTTP(w, r.WithContext(ctx))
	}
}

// bufferPool reuses the copy buffers of the reverse proxy.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
