package codec_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/tiercache/tiercache/codec"
)

// compatRecord has what encoding/json treats specially: tags, omitempty,
// strings needing escapes (HTML, control, invalid UTF-8), nil and empty
// slices and maps, byte slices, pointers, embedded structs, times and
// numbers at the edges.
type compatRecord struct {
	compatEmbedded
	ID       string            `json:"id"`
	Bio      string            `json:"bio,omitempty"`
	Tags     []string          `json:"tags"`
	Empty    []string          `json:"empty"`
	Attrs    map[string]any    `json:"attrs"`
	NilMap   map[string]string `json:"nil_map"`
	Raw      []byte            `json:"raw"`
	Ptr      *int              `json:"ptr"`
	NilPtr   *int              `json:"nil_ptr,omitempty"`
	At       time.Time         `json:"at"`
	F        float64           `json:"f"`
	Big      int64             `json:"big"`
	AsString int               `json:"as_string,string"`
	Skipped  string            `json:"-"`
	unexp    int
}

type compatEmbedded struct {
	Kind string `json:"kind"`
}

func compatValues() []compatRecord {
	seven := 7
	return []compatRecord{
		{},
		{
			compatEmbedded: compatEmbedded{Kind: "k"},
			ID:             "42", Bio: "<b>Tom & Jerry</b>\u2028\u2029\x01\"\\ é 日本 \xff", Tags: []string{"a", ""},
			Empty: []string{}, Attrs: map[string]any{"z": 1.5, "a": []any{"x", nil, true}, "m": map[string]any{}},
			NilMap: nil, Raw: []byte{0, 1, 254, 255}, Ptr: &seven,
			At: time.Date(2026, 11, 27, 7, 0, 0, 123456789, time.FixedZone("X", 3600)),
			F:  math.SmallestNonzeroFloat64, Big: math.MaxInt64, AsString: -12, Skipped: "no", unexp: 3,
		},
		{F: 1e21, Big: math.MinInt64, Tags: nil, Attrs: map[string]any{}},
	}
}

// TestJSONCodecIsEncodingJSON: the default codec writes the bytes
// encoding/json writes and reads what it reads, so entries written by
// earlier versions (encoding/json) and by other processes are read the
// same, and stay readable from other languages.
func TestJSONCodecIsEncodingJSON(t *testing.T) {
	c := codec.JSON[compatRecord]()
	for i, v := range compatValues() {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Append([]byte("prefix"), v)
		if err != nil {
			t.Fatalf("value %d: Append: %v", i, err)
		}
		// One known difference: invalid UTF-8 in a string is replaced by
		// U+FFFD in both, which encoding/json writes escaped (\ufffd) and
		// this codec as the character; both read back the same.
		want2 := bytes.ReplaceAll(want, []byte(`\ufffd`), []byte("\ufffd"))
		if !bytes.Equal(got[len("prefix"):], want2) || string(got[:len("prefix")]) != "prefix" {
			t.Errorf("value %d: Append wrote\n%s\nencoding/json writes\n%s", i, got, want)
		}
		var dec, ref compatRecord
		if err := c.Decode(want, &dec); err != nil {
			t.Fatalf("value %d: Decode: %v", i, err)
		}
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dec, ref) {
			t.Errorf("value %d: Decode read\n%+v\nencoding/json reads\n%+v", i, dec, ref)
		}
	}
	// What encoding/json accepts on the way in: names in another case,
	// duplicate names (the last wins), unknown fields, invalid UTF-8.
	in := []byte(`{"ID":"1","id":"2","BIO":"b","unknown":{"x":[1]},"tags":["` + "\xff" + `"]}`)
	var dec, ref compatRecord
	if err := json.Unmarshal(in, &ref); err != nil {
		t.Fatal(err)
	}
	if err := c.Decode(in, &dec); err != nil || !reflect.DeepEqual(dec, ref) {
		t.Errorf("Decode(%s) = %+v, %v; encoding/json reads %+v", in, dec, err, ref)
	}
	// And what it refuses.
	for _, bad := range []string{`{"id":1}`, `{"id":"x"`, `[1]`, `{"tags":"x"}`} {
		var v compatRecord
		errRef := json.Unmarshal([]byte(bad), &v)
		errGot := c.Decode([]byte(bad), &v)
		if (errRef == nil) != (errGot == nil) {
			t.Errorf("Decode(%s) = %v; encoding/json: %v", bad, errGot, errRef)
		}
	}
}
