// Package deploytest checks Optio's deployment files against its code: the
// OpenFaaS stack, the function builds as the golang-http template runs them,
// the Dockerfiles, docker-compose.yml and the Kubernetes manifests.
package deploytest
