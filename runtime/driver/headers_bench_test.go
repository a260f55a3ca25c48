package driver

import (
	"reflect"
	"testing"
)

// celeryHeaders is a Celery 5.2 task's protocol v2 headers as an AMQP table
// or a JSON decoder gives them.
func celeryHeaders() map[string]any {
	return map[string]any{
		"lang": "py", "task": "tasks.add", "id": "22222222-2222-4222-8222-222222222222",
		"shadow": nil, "eta": nil, "expires": nil, "group": nil, "group_index": nil,
		"retries": int64(0), "timelimit": []any{nil, nil},
		"root_id":   "22222222-2222-4222-8222-222222222222",
		"parent_id": nil, "argsrepr": "(1, 1)", "kwargsrepr": "{}",
		"origin": "gen11803@vm", "ignore_result": false,
	}
}

// BenchmarkParseHeaders is the AMQP transport's route: a decoded table to
// TaskHeaders.
func BenchmarkParseHeaders(b *testing.B) {
	m := celeryHeaders()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeaders(m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHeaderReaderMatchesParseHeaders adds the headers one by one, as a
// streaming decoder does, and checks the result is ParseHeaders' (with an
// unknown header kept in Extra, and the last of a repeated header winning).
func TestHeaderReaderMatchesParseHeaders(t *testing.T) {
	m := celeryHeaders()
	m["stamps"] = map[string]any{"a": "b"}
	m["retries"] = int64(3)
	want, err := ParseHeaders(m)
	if err != nil {
		t.Fatal(err)
	}
	var r HeaderReader
	r.AddKey([]byte("retries"), int64(1))
	for k, v := range m {
		r.AddKey([]byte(k), v)
	}
	got, err := r.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if got.Retries != 3 || got.Extra["stamps"] == nil || got.Origin != "gen11803@vm" || got.ArgsRepr != "(1, 1)" {
		t.Fatalf("HeaderReader: %+v", got)
	}
	if len(got.Extra) != 1 || len(want.Extra) != 1 || got.Task != want.Task || got.ID != want.ID || got.RootID != want.RootID {
		t.Fatalf("HeaderReader\n%+v\nParseHeaders\n%+v", got, want)
	}
	var bad HeaderReader
	bad.Add("task", "t")
	bad.Add("id", "i")
	bad.Add("retries", "x")
	if _, err := bad.Parse(); err == nil || err.Error() != `header "retries": want an integer, got x` {
		t.Fatalf("bad retries: %v", err)
	}
}

// TestHeaderReaderStrings checks that string values added with AddKeyString
// parse as the same values added boxed: equal TaskHeaders, the same error
// for a string where a known header wants another type, and the last of a
// repeated header winning whichever way either was added.
func TestHeaderReaderStrings(t *testing.T) {
	m := celeryHeaders()
	m["eta"] = "2026-12-07T10:00:00.5+01:00"
	m["user"] = "kept"
	want, err := ParseHeaders(m)
	if err != nil {
		t.Fatal(err)
	}
	var r HeaderReader
	for k, v := range m {
		if s, ok := v.(string); ok {
			r.AddKeyString([]byte(k), s)
		} else {
			r.AddKey([]byte(k), v)
		}
	}
	got, err := r.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AddKeyString\n%+v\nParseHeaders\n%+v", got, want)
	}

	var last HeaderReader
	last.AddKeyString([]byte("task"), "t")
	last.AddKeyString([]byte("id"), "i")
	last.AddKeyString([]byte("origin"), "first")
	last.AddKey([]byte("origin"), nil)
	last.AddKey([]byte("argsrepr"), "boxed")
	last.AddKeyString([]byte("argsrepr"), "unboxed")
	h, err := last.Parse()
	if err != nil || h.Origin != "" || h.ArgsRepr != "unboxed" {
		t.Fatalf("repeated headers: %+v, %v", h, err)
	}

	for _, name := range []string{"retries", "group_index", "ignore_result", "timelimit"} {
		var boxed, unboxed HeaderReader
		for _, r := range []*HeaderReader{&boxed, &unboxed} {
			r.AddKeyString([]byte("task"), "t")
			r.AddKeyString([]byte("id"), "i")
		}
		boxed.AddKey([]byte(name), "x")
		unboxed.AddKeyString([]byte(name), "x")
		_, berr := boxed.Parse()
		_, uerr := unboxed.Parse()
		if berr == nil || uerr == nil || berr.Error() != uerr.Error() {
			t.Fatalf("%s as a string: boxed %v, AddKeyString %v", name, berr, uerr)
		}
	}
}
