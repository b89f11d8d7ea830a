package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// TestKubernetes decodes every manifest under deploy/kubernetes strictly
// (unknown or duplicate fields are errors) into the Kubernetes API types and
// checks that the connector and the relay each have a Deployment and a
// Service, take their settings from the ConfigMap and their credentials from
// Secrets, and run as non-root with probes on a declared port.
func TestKubernetes(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	deployments := map[string]*appsv1.Deployment{}
	services := map[string]*corev1.Service{}
	configMaps := map[string]*corev1.ConfigMap{}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(path), err)
				continue
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				deployments[o.Name] = o
			case *corev1.Service:
				services[o.Name] = o
			case *corev1.ConfigMap:
				configMaps[o.Name] = o
			default:
				t.Errorf("%s: unexpected %T", filepath.Base(path), obj)
			}
		}
	}
	for _, name := range []string{"optio-connector", "optio-relay"} {
		t.Run(name, func(t *testing.T) {
			d, ok := deployments[name]
			if !ok {
				t.Fatalf("no Deployment %s", name)
			}
			s, ok := services[name]
			if !ok {
				t.Fatalf("no Service %s", name)
			}
			pod := d.Spec.Template
			for k, v := range d.Spec.Selector.MatchLabels {
				if pod.Labels[k] != v || s.Spec.Selector[k] != v {
					t.Errorf("selector %s=%s does not match the pod template and the Service", k, v)
				}
			}
			if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Errorf("pod does not require a non-root user")
			}
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
			}
			c := pod.Spec.Containers[0]
			var fromConfig bool
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					if _, ok := configMaps[ef.ConfigMapRef.Name]; !ok {
						t.Errorf("envFrom names ConfigMap %s, which no manifest defines", ef.ConfigMapRef.Name)
					}
					fromConfig = true
				}
			}
			if !fromConfig {
				t.Errorf("settings do not come from a ConfigMap")
			}
			var secrets []string
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					secrets = append(secrets, e.Name)
				}
				if e.Name == "REDIS_URL" || e.Name == "AMQP_URL" || e.Name == "OPENFAAS_PASSWORD" {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s holds credentials and must come from a Secret", e.Name)
					}
				}
			}
			if len(secrets) == 0 {
				t.Errorf("no credential comes from a Secret")
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			// /healthz answers 503 while Redis or RabbitMQ is away: right
			// for readiness, wrong for liveness, which would restart a
			// healthy process (and drop every browser) during an outage it
			// rides out by itself. Liveness is an open port.
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
				t.Errorf("readiness probe is not GET /healthz")
			} else if port := p.HTTPGet.Port; port.Type == intstr.String && ports[port.StrVal] == 0 {
				t.Errorf("readiness probe port %q is not a container port", port.StrVal)
			}
			if p := c.LivenessProbe; p == nil || p.TCPSocket == nil {
				t.Errorf("liveness probe is not a TCP check of the listening port")
			} else if port := p.TCPSocket.Port; port.Type == intstr.String && ports[port.StrVal] == 0 {
				t.Errorf("liveness probe port %q is not a container port", port.StrVal)
			}
			for _, sp := range s.Spec.Ports {
				if sp.TargetPort.Type == intstr.String && ports[sp.TargetPort.StrVal] == 0 {
					t.Errorf("Service targetPort %q is not a container port", sp.TargetPort.StrVal)
				}
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("memory requests and limits should be set")
			}
		})
	}
}
