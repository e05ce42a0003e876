package workload

import (
	"strconv"
	"strings"
)

// Record is the cached value of every Redis scenario: a user with a few
// fields and a ~900-byte biography, about 1 KB as JSON. Every field is
// exported and tagged so that encoding/json, msgpack and the other codecs
// encode the same thing.
type Record struct {
	ID        string   `json:"id" msgpack:"id"`
	Name      string   `json:"name" msgpack:"name"`
	Email     string   `json:"email" msgpack:"email"`
	Age       int      `json:"age" msgpack:"age"`
	Active    bool     `json:"active" msgpack:"active"`
	Score     float64  `json:"score" msgpack:"score"`
	CreatedAt int64    `json:"created_at" msgpack:"created_at"`
	Tags      []string `json:"tags" msgpack:"tags"`
	Bio       string   `json:"bio" msgpack:"bio"`
}

// BioLen is the length of Record.Bio.
const BioLen = 900

// NewRecord returns the record of id. It is deterministic, so that a test
// can compare what a cache returns with what the origin would.
func NewRecord(id string) Record {
	n, _ := strconv.Atoi(strings.TrimLeftFunc(id, func(r rune) bool { return r < '0' || r > '9' }))
	var b strings.Builder
	b.Grow(BioLen)
	for b.Len() < BioLen {
		b.WriteString("user ")
		b.WriteString(id)
		b.WriteString(" writes Go services that read the same rows again and again; ")
	}
	return Record{
		ID:        id,
		Name:      "User " + id,
		Email:     "user" + id + "@example.com",
		Age:       18 + n%60,
		Active:    n%3 != 0,
		Score:     float64(n%1000) / 7,
		CreatedAt: 1_700_000_000 + int64(n),
		Tags:      []string{"customer", "tier-" + strconv.Itoa(n%5)},
		Bio:       b.String()[:BioLen],
	}
}
