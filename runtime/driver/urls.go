package driver

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// URLSeparator separates the URLs of a list, as in kombu's failover form
// "amqp://u:p@h1:5672/v;amqp://u:p@h2:5672/v". A ';' inside one URL (a
// password, say) must be percent-encoded as %3B.
const URLSeparator = ";"

// ErrURLList is wrapped by the errors of a URL list that cannot be used:
// mixed schemes, or a list for a transport that takes a single URL.
var ErrURLList = errors.New("bad URL list")

// ParseURLs parses raw, one URL or a list of URLs separated by
// [URLSeparator], and refuses what it cannot read whole rather than keeping a
// part: an empty entry, an entry without a scheme, a query that does not
// parse (url.ParseQuery would drop it silently), or entries of different
// schemes (a list names the nodes of one transport). Blanks around entries
// are ignored. Errors never show a password.
func ParseURLs(raw string) ([]*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("empty URL")
	}
	parts := strings.Split(raw, URLSeparator)
	urls := make([]*url.URL, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		where := ""
		if len(parts) > 1 {
			where = fmt.Sprintf("URL %d of the list: ", i+1)
		}
		if p == "" {
			return nil, fmt.Errorf("%w: %sempty (URLs of a list are separated by %q)", ErrURLList, where, URLSeparator)
		}
		u, err := url.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("%s%w", where, redactErr(err))
		}
		if u.Scheme == "" {
			return nil, fmt.Errorf("%s%s has no scheme (URLs of a list are separated by %q; write a %q inside a URL as %%3B)",
				where, redactOne(p), URLSeparator, URLSeparator)
		}
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			return nil, fmt.Errorf("%squery: %v", where, err)
		}
		if i > 0 && u.Scheme != urls[0].Scheme {
			return nil, fmt.Errorf("%w: URL %d is %s:// but URL 1 is %s://; the URLs of a list are nodes of one transport",
				ErrURLList, i+1, u.Scheme, urls[0].Scheme)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

func errNoList(scheme string, n int) error {
	return fmt.Errorf("%w: the %s:// transport takes one URL, not a list of %d", ErrURLList, scheme, n)
}
