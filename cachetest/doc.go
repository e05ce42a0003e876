// Package cachetest holds helpers for tests of tiercache and of Store
// implementations.
//
// StartRedis starts a private redis-server process for one test, on a free
// loopback port, and stops it when the test ends; RunRedis does the same for
// TestMain. The Server it returns can be killed, paused, resumed and
// restarted on the same port, so tests can inject the faults a real Redis
// has, and its Do method sends raw commands (FLUSHALL, CONFIG SET, CLIENT
// KILL, a SET of corrupt bytes) without going through the code under test.
//
// StartCluster does the same for a Redis Cluster of several nodes (3 masters,
// optionally with replicas), which tests can fail over and reshard, and
// StartSentinel for a master, its replicas and the sentinels watching them,
// which tests can fail over.
//
// The package also holds a conformance suite that every Store
// implementation is expected to pass.
//
// cachetest imports only the standard library: it talks to redis-server with
// a small RESP2 client of its own, so that importing it does not pull a Redis
// client into the packages under test.
package cachetest
