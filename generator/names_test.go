package generator_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/generator"
)

func TestSnakeCase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"sendWelcomeEmail", "send_welcome_email"},
		{"sendHTTPRequest", "send_http_request"},
		{"userID", "user_id"},
		{"userIDs", "user_ids"},
		{"getURLs", "get_urls"},
		{"URLsFor", "urls_for"},
		{"HTTPServer", "http_server"},
		{"base64Data", "base64_data"},
		{"sha256", "sha256"},
		{"v2API", "v2_api"},
		{"already_snake", "already_snake"},
		{"mixed_CaseID", "mixed_case_id"},
		{"x", "x"},
		{"ID", "id"},
		{"ÉtéCafé", "été_café"},
	} {
		require.Equal(t, tc.want, generator.SnakeCase(tc.in), "SnakeCase(%q)", tc.in)
	}
}

func ExampleSnakeCase() {
	fmt.Println(generator.SnakeCase("sendHTTPRequest"))
	fmt.Println(generator.SnakeCase("userID"))
	// Output:
	// send_http_request
	// user_id
}

// FuzzSnakeCase checks that SnakeCase only lower-cases letters and adds
// underscores, and that it is idempotent.
func FuzzSnakeCase(f *testing.F) {
	for _, s := range []string{"sendHTTPRequest", "userIDs", "v2API", "a_B", "ÉtéCafé", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := generator.SnakeCase(s)
		strip := func(s string) string { return strings.ReplaceAll(s, "_", "") }
		if strip(got) != strip(strings.Map(unicode.ToLower, s)) {
			t.Fatalf("SnakeCase(%q) = %q changed more than case and underscores", s, got)
		}
		if again := generator.SnakeCase(got); again != got {
			t.Fatalf("SnakeCase(%q) = %q, then %q", s, got, again)
		}
	})
}
