//go:build !race

package tiercache_test

// raceDetector is set when the tests run with -race.
const raceDetector = false
