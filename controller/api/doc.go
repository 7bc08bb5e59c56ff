// Package api is Ferrum's OpenStack Ironic v1 REST API: one http.Handler that speaks Ironic
// 21.4.4's wire format (microversions 1.1–1.82, JSON bodies, error bodies, links, paging)
// closely enough that the baremetal CLI, gophercloud's baremetal/v1 and Nova's ironic driver
// use Ferrum unmodified.
//
// The handler decodes and validates requests the way Ironic does, with Ironic's messages,
// and calls a Backend (the conductor) for everything else; every error goes through one
// error→status mapper. Authentication and metrics are middleware outside this package.
// docs/api.md lists the endpoints and every known deviation from Ironic.
//
// Only controller/cmd wiring and tests import it; apitest holds an in-memory Backend for
// tests.
package api
