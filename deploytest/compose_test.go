package deploytest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestCompose loads docker-compose.yml with compose-go, the loader Docker
// Compose itself uses (validation against the compose schema included),
// and checks the properties the product relies on.
func TestCompose(t *testing.T) {
	t.Parallel()
	root := RepoRoot()
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("optio", true) })
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	want := []string{"connector", "elasticsearch", "rabbitmq", "redis", "relay", "runtime"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	svc := p.Services
	published := map[string][]uint32{}
	for _, name := range want {
		s := svc[name]
		t.Run(name, func(t *testing.T) {
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
				t.Errorf("no healthcheck")
			}
			for dep, d := range s.DependsOn {
				if d.Condition != types.ServiceConditionHealthy {
					t.Errorf("depends_on %s with condition %q, want service_healthy", dep, d.Condition)
				}
			}
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeVolume {
					t.Errorf("volume %s is a %s; want named volumes only", v.Target, v.Type)
				} else if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("volume %s is not a declared named volume", v.Source)
				}
			}
			for _, port := range s.Ports {
				if port.Published != "" {
					published[name] = append(published[name], port.Target)
				}
			}
			if s.Build != nil {
				if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
					t.Errorf("build: %v", err)
				}
			} else if !pinnedImage.MatchString(s.Image) {
				t.Errorf("image %q is not pinned to a version", s.Image)
			}
			for k, v := range s.Environment {
				if v == nil || !strings.HasSuffix(k, "_URL") {
					continue
				}
				u, err := url.Parse(*v)
				if err != nil {
					t.Errorf("%s=%q: %v", k, *v, err)
					continue
				}
				host := u.Hostname()
				if _, ok := svc[host]; !ok {
					t.Errorf("%s points at %q, which is not a service of this file", k, host)
				} else if _, ok := s.DependsOn[host]; !ok && host != name {
					t.Errorf("%s points at %s, but the service does not depend on it", k, host)
				}
			}
		})
	}
	if len(published) != 2 || !slices.Equal(published["runtime"], []uint32{8080}) || !slices.Equal(published["relay"], []uint32{8090}) {
		t.Errorf("published ports %v; want only the gateway (runtime 8080) and the dashboard (relay 8090)", published)
	}

	redis := strings.Join(svc["redis"].Command, " ")
	if !strings.Contains(redis, "--appendonly yes") {
		t.Errorf("redis command %q does not turn on AOF persistence", redis)
	}
	if !hasTarget(svc["redis"], "/data") || !hasTarget(svc["rabbitmq"], "/var/lib/rabbitmq") || !hasTarget(svc["elasticsearch"], "/usr/share/elasticsearch/data") {
		t.Errorf("Redis, RabbitMQ and Elasticsearch must keep their data in volumes")
	}
	if img := svc["rabbitmq"].Image; !strings.Contains(img, "-management") {
		t.Errorf("rabbitmq image %q lacks the management plugin", img)
	}
	es := svc["elasticsearch"]
	if !strings.Contains(es.Image, "/elasticsearch:8.") {
		t.Errorf("elasticsearch image %q is not Elasticsearch 8", es.Image)
	}
	for k, v := range map[string]string{"discovery.type": "single-node", "xpack.security.enabled": "true"} {
		if got := es.Environment[k]; got == nil || *got != v {
			t.Errorf("elasticsearch %s = %v, want %q", k, got, v)
		}
	}
	for _, k := range []string{"xpack.security.http.ssl.enabled", "ELASTIC_PASSWORD"} {
		if es.Environment[k] == nil {
			t.Errorf("elasticsearch: %s is not set explicitly", k)
		}
	}
	rt := svc["runtime"].Environment
	if rt["ES_PASSWORD"] == nil || es.Environment["ELASTIC_PASSWORD"] == nil || *rt["ES_PASSWORD"] != *es.Environment["ELASTIC_PASSWORD"] {
		t.Errorf("the runtime's ES_PASSWORD must be Elasticsearch's ELASTIC_PASSWORD")
	}
	// The gateway's /system API needs basic auth; the connector reads the
	// functions' topics there, so it must hold the runtime's password.
	conn := svc["connector"].Environment
	if rt["OPTIO_GATEWAY_PASSWORD"] == nil || conn["OPENFAAS_PASSWORD"] == nil || *rt["OPTIO_GATEWAY_PASSWORD"] != *conn["OPENFAAS_PASSWORD"] {
		t.Errorf("the connector's OPENFAAS_PASSWORD must be the runtime's OPTIO_GATEWAY_PASSWORD")
	}
	if conn["OPENFAAS_USER"] == nil || *conn["OPENFAAS_USER"] != "admin" {
		t.Errorf("the connector's OPENFAAS_USER must be admin, the user the runtime's gateway has")
	}
}

func hasTarget(s types.ServiceConfig, target string) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == target })
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
