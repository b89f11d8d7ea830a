// Package esstore is a stand-in for Elasticsearch: a small server that
// answers the subset of the Elasticsearch 8 REST API Optio uses (root info,
// create/exists/get/delete index, index/create/get/delete document, _bulk,
// _count with match_all or a term, _refresh) like Elasticsearch does, and
// keeps the data on disk in bbolt. It exists because no Elasticsearch runs on
// the development machine; anything that works against it is meant to work
// against a real Elasticsearch 8 at ES_URL.
package esstore
