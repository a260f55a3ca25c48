package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sync"
)

var ifaceTypes sync.Map // reflect.Type → bool

// mayHoldInterface reports whether values of t can contain interface values.
func mayHoldInterface(t reflect.Type) bool {
	if v, ok := ifaceTypes.Load(t); ok {
		return v.(bool)
	}
	r := mayHoldInterfaceRec(t, map[reflect.Type]bool{})
	ifaceTypes.Store(t, r)
	return r
}

func mayHoldInterfaceRec(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return mayHoldInterfaceRec(t.Elem(), seen)
	case reflect.Map:
		return mayHoldInterfaceRec(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && mayHoldInterfaceRec(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// normalizeInterfaces rewrites the numbers held in empty-interface values
// reachable from ptr to the generic decoders' types: json.Number and every
// integer width to int64 (uint64 above MaxInt64), float32 to float64.
func normalizeInterfaces(ptr any) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	normalizeValue(v.Elem(), 0)
}

func normalizeValue(v reflect.Value, depth int) {
	if depth > maxNesting || !mayHoldInterface(v.Type()) {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() || v.NumMethod() != 0 || !v.CanSet() {
			return
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer || e.Kind() == reflect.Struct {
			return
		}
		v.Set(reflect.ValueOf(normalizeAny(e.Interface(), depth+1)))
	case reflect.Pointer:
		if !v.IsNil() {
			normalizeValue(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				normalizeValue(f, depth+1)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			normalizeValue(v.Index(i), depth+1)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		et := v.Type().Elem()
		iter := v.MapRange()
		for iter.Next() {
			nv := reflect.New(et).Elem()
			nv.Set(iter.Value())
			normalizeValue(nv, depth+1)
			v.SetMapIndex(iter.Key(), nv)
		}
	}
}

func normalizeAny(x any, depth int) any {
	if depth > maxNesting {
		return x
	}
	switch v := x.(type) {
	case json.Number:
		if n := jsonNumber([]byte(v)); n != nil {
			return n
		}
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint:
		return normalizeAny(uint64(v), depth)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case float32:
		return float64(v)
	case []any:
		for i := range v {
			v[i] = normalizeAny(v[i], depth+1)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeAny(e, depth+1)
		}
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			ks, err := mapKeyString(normalizeAny(k, depth+1))
			if err != nil {
				ks = fmt.Sprint(k)
			}
			m[ks] = normalizeAny(e, depth+1)
		}
		return m
	}
	return x
}
