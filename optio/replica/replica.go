// Package replica reads how many replicas of a function are ready, from the
// OpenFaaS gateway's GET /system/function/NAME (which asks the provider),
// keeping the answer for a moment so that a busy caller such as the status
// function asks the gateway at most once a second.
package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Unknown is the count when the gateway cannot be asked or does not know
// the function.
const Unknown = -1

// Config says which function to count and how to reach the gateway.
type Config struct {
	// GatewayURL is the OpenFaaS gateway. Required.
	GatewayURL string
	// Function is the function whose replicas are counted. Required.
	Function string
	// User and Password authenticate to the gateway's /system API when
	// User is set (the gateway's basic auth). Default none.
	User, Password string
	// TTL is how long an answer, or a failure, is kept. Default 1s.
	TTL time.Duration
	// Timeout bounds one request to the gateway. Default 500ms.
	Timeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	if c.GatewayURL == "" || c.Function == "" {
		return fmt.Errorf("replica: GatewayURL and Function are required")
	}
	c.GatewayURL = strings.TrimRight(c.GatewayURL, "/")
	if c.TTL <= 0 {
		c.TTL = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Counter counts the ready replicas of one function. It is safe for
// concurrent use.
type Counter struct {
	cfg    Config
	client *http.Client

	mu    sync.Mutex // held while asking, so concurrent callers ask once
	count int
	at    time.Time // when count was read; zero: never
}

// New returns a Counter for cfg.
func New(cfg Config) (*Counter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Counter{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}, nil
}

// Count is the number of ready replicas of the function, at most TTL old,
// or Unknown when the gateway could not tell. It never takes much longer
// than Timeout.
func (c *Counter) Count(ctx context.Context) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if !c.at.IsZero() && now.Sub(c.at) < c.cfg.TTL {
		return c.count
	}
	n, err := c.ask(ctx)
	if err != nil {
		n = Unknown
	}
	c.count, c.at = n, c.cfg.Now()
	return n
}

// status is the part of the gateway's FunctionStatus read here.
type status struct {
	AvailableReplicas *int `json:"availableReplicas"`
}

func (c *Counter) ask(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.GatewayURL+"/system/function/"+c.cfg.Function, nil)
	if err != nil {
		return Unknown, fmt.Errorf("asking for the replicas of %s: %w", c.cfg.Function, err)
	}
	if c.cfg.User != "" {
		req.SetBasicAuth(c.cfg.User, c.cfg.Password)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return Unknown, fmt.Errorf("asking for the replicas of %s: %w", c.cfg.Function, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Unknown, fmt.Errorf("reading the replicas of %s: %w", c.cfg.Function, err)
	}
	if res.StatusCode != http.StatusOK {
		return Unknown, fmt.Errorf("asking for the replicas of %s: gateway answered %d", c.cfg.Function, res.StatusCode)
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil || st.AvailableReplicas == nil || *st.AvailableReplicas < 0 {
		return Unknown, fmt.Errorf("the gateway's status of %s has no replica count: %.200q", c.cfg.Function, body)
	}
	return *st.AvailableReplicas, nil
}
