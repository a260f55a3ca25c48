package driver

import (
	"errors"
	"fmt"

	"github.com/taskgen/taskgen/runtime/internal/wire"
)

// EncodeGroupDoc returns the GroupResult document of group gid whose
// members are the tasks ids, as Celery's GroupResult.save writes it:
// {"result": [[gid, null], [[[id, null], null], ...]]} (the group's
// as_tuple), serialized with serializer.
func EncodeGroupDoc(serializer, gid string, ids []string) ([]byte, error) {
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = []any{[]any{id, nil}, nil}
	}
	return wire.AppendGeneric(nil, serializer, map[string]any{"result": []any{[]any{gid, nil}, members}})
}

// DecodeGroupDoc returns the group id and the member task ids of a
// GroupResult document (Go's or Python's).
func DecodeGroupDoc(serializer string, doc []byte) (gid string, ids []string, err error) {
	v, err := wire.DecodeGeneric(serializer, doc)
	if err != nil {
		return "", nil, fmt.Errorf("group document: %w", err)
	}
	bad := errors.New("group document: not {\"result\": [[id, parent], [members...]]}")
	m, _ := v.(map[string]any)
	res, _ := m["result"].([]any)
	if len(res) != 2 {
		return "", nil, bad
	}
	head, _ := res[0].([]any)
	if len(head) < 1 {
		return "", nil, bad
	}
	gid, _ = head[0].(string)
	members, _ := res[1].([]any)
	for _, mem := range members {
		// A member is [[id, parent], None] (a result) or [[gid, parent],
		// [...]] (a nested group, whose id is listed).
		t, _ := mem.([]any)
		if len(t) < 1 {
			return "", nil, bad
		}
		idp, _ := t[0].([]any)
		if len(idp) < 1 {
			return "", nil, bad
		}
		id, _ := idp[0].(string)
		ids = append(ids, id)
	}
	return gid, ids, nil
}
