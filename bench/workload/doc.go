// Package workload holds what every contender of the comparative benchmark
// shares: the value (a ~1 KB user Record), the counting origin the loaders
// call, the Zipf key traces and the latency histogram.
//
// Everything here is per instance: a benchmark run creates its own Origin,
// traces and histograms, so scenarios and rounds never share state.
package workload
