package rules

import (
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/vigilhq/vigil/observe"
)

// obsVal is an observation as the CEL value `obs`: the same keys and values
// as Activation, looked up where they live instead of copied into a fresh
// map for every observation. With tens of thousands of accounts that copy
// was a quarter of evaluation time. Anything but a key lookup (iterating
// obs, comparing it whole) falls back to the full map.
type obsVal struct {
	o        *observe.Observation
	defaults map[string]any
}

var (
	_       traits.Mapper = obsVal{}
	mapType               = types.NewMapType(types.StringType, types.DynType)
)

// lookup resolves key as Activation would: common fields first, then the
// observation's attributes, then the kind's defaults.
func (v obsVal) lookup(key string) (any, bool) {
	o := v.o
	switch key {
	case "kind":
		return string(o.Kind), true
	case "location":
		return o.Location, true
	case "segment":
		return o.Segment, true
	case "segment_role":
		return o.SegmentRole, true
	case "vantage":
		return o.Vantage, true
	case "vantage_role":
		return o.VantageRole, true
	case "internet_facing":
		return o.InternetFacing, true
	case "host":
		return o.Host, true
	case "port":
		return o.Port, true
	case "proto":
		return o.Proto, true
	case "source":
		return o.Source, true
	case "target":
		return o.Target(), true
	case "exposure":
		return Exposure(*o), true
	}
	if x, ok := o.Attrs[key]; ok {
		return x, true
	}
	x, ok := v.defaults[key]
	return x, ok
}

func (v obsVal) full() ref.Val { return types.DefaultTypeAdapter.NativeToValue(Activation(*v.o)) }

func (v obsVal) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return v.full().(traits.Mapper).Find(key)
	}
	x, ok := v.lookup(string(k))
	if !ok {
		return nil, false
	}
	return types.DefaultTypeAdapter.NativeToValue(x), true
}

func (v obsVal) Get(key ref.Val) ref.Val {
	if x, ok := v.Find(key); ok {
		return x
	}
	return types.NewErr("no such key: %v", key)
}

func (v obsVal) Contains(key ref.Val) ref.Val {
	_, ok := v.Find(key)
	return types.Bool(ok)
}

func (v obsVal) Iterator() traits.Iterator { return v.full().(traits.Mapper).Iterator() }
func (v obsVal) Size() ref.Val             { return v.full().(traits.Mapper).Size() }
func (v obsVal) ConvertToNative(t reflect.Type) (any, error) {
	return v.full().ConvertToNative(t)
}
func (v obsVal) ConvertToType(t ref.Type) ref.Val { return v.full().ConvertToType(t) }
func (v obsVal) Equal(other ref.Val) ref.Val      { return v.full().Equal(other) }
func (v obsVal) Type() ref.Type                   { return mapType }
func (v obsVal) Value() any                       { return Activation(*v.o) }
