package policy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/pinfold/pinfold/ipc"
)

// The spec.ipc section: its decoding, validation and encoding. The section is
// the broker's own type, ipc.Grants, as the resources section is the OCI
// runtime spec's.

// Defaults Parse fills in when a file has create grants and leaves the quota
// out.
const (
	DefaultIPCMaxObjects      = 16
	DefaultIPCMaxBytes   Size = 256 * MiB
)

// Bounds on ipc values.
const (
	// maxIPCObjects bounds maxObjects: far more than an app holds, few
	// enough that a typo (16000000) is caught.
	maxIPCObjects = 65536
	// The broker's bounds: a queue's attributes (the kernel's hard
	// limits), what a pipe counts against maxBytes and maxSize, and the
	// largest object it creates.
	maxMQMsgs             = ipc.MQMaxMsg
	maxMQMsgSize     Size = ipc.MQMaxMsgSize
	pipeBytes        Size = ipc.PipeBytes
	maxIPCObjectSize Size = ipc.MaxObjectSize
)

// ipcGrants decodes spec.ipc.
func (d *decoder) ipcGrants(n ast.Node, path string, g *ipc.Grants) {
	d.mapping(n, path,
		intField(d, "maxObjects", &g.MaxObjects, 0, maxIPCObjects),
		d.int64SizeField("maxBytes", &g.MaxBytes),
		d.boolField("posixMQ", &g.POSIXMQ),
		field{"create", func(n ast.Node, path string) {
			g.Create = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				g.Create = append(g.Create, d.createGrant(n, path))
			})
		}},
		field{"attach", func(n ast.Node, path string) {
			g.Attach = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				g.Attach = append(g.Attach, d.attachGrant(n, path))
			})
		}},
		field{"channels", func(n ast.Node, path string) {
			g.Channels = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				g.Channels = append(g.Channels, d.ipcChannel(n, path))
			})
		}},
	)
	// A policy that may create objects gets a quota unless it sets one;
	// each create grant's maxSize is then the whole quota. Filled in here
	// so that policy show prints what applies.
	if len(g.Create) == 0 {
		return
	}
	if _, ok := d.values[path+".maxObjects"]; !ok {
		g.MaxObjects = DefaultIPCMaxObjects
	}
	if _, ok := d.values[path+".maxBytes"]; !ok {
		g.MaxBytes = int64(DefaultIPCMaxBytes)
	}
	for i := range g.Create {
		if _, ok := d.values[indexPath(path+".create", i)+".maxSize"]; !ok {
			g.Create[i].MaxSize = g.MaxBytes
		}
	}
}

func (d *decoder) createGrant(n ast.Node, path string) ipc.CreateGrant {
	var c ipc.CreateGrant
	d.mapping(n, path,
		d.stringsField("names", &c.Names),
		d.kindsField("kinds", &c.Kinds),
		d.int64SizeField("maxSize", &c.MaxSize),
		d.boolField("persistent", &c.Persistent),
		d.stringsField("peers", &c.Peers),
	)
	return c // even if broken: keeps the indexes of later items
}

func (d *decoder) attachGrant(n ast.Node, path string) ipc.AttachGrant {
	var a ipc.AttachGrant
	d.mapping(n, path,
		d.stringsField("names", &a.Names),
		d.kindsField("kinds", &a.Kinds),
		d.accessField("access", &a.Access),
		d.stringsField("owners", &a.Owners),
	)
	return a
}

func (d *decoder) ipcChannel(n ast.Node, path string) ipc.Channel {
	var c ipc.Channel
	d.mapping(n, path,
		d.strField("name", &c.Name),
		d.kindField("kind", &c.Kind),
		d.accessField("access", &c.Access),
		d.int64SizeField("size", &c.Size),
		intField(d, "maxMsg", &c.MaxMsg, 0, maxMQMsgs),
		d.int64SizeField("msgSize", &c.MsgSize),
	)
	return c
}

// int64SizeField reads a size into an int64, as the ipc types hold them.
func (d *decoder) int64SizeField(name string, dst *int64) field {
	return field{name, func(n ast.Node, path string) {
		if v, ok := d.bytes(n, path); ok {
			*dst = int64(v)
		}
	}}
}

// stringsField reads a sequence of strings; an empty sequence is nil.
func (d *decoder) stringsField(name string, dst *[]string) field {
	return field{name, func(n ast.Node, path string) {
		*dst = nil
		d.sequence(n, path, func(n ast.Node, path string) {
			s, _ := d.str(n, path)
			*dst = append(*dst, s)
		})
	}}
}

func (d *decoder) kindsField(name string, dst *[]ipc.Kind) field {
	return field{name, func(n ast.Node, path string) {
		*dst = nil
		d.sequence(n, path, func(n ast.Node, path string) {
			k, _ := d.ipcKind(n, path)
			*dst = append(*dst, k)
		})
	}}
}

func (d *decoder) kindField(name string, dst *ipc.Kind) field {
	return field{name, func(n ast.Node, path string) {
		if k, ok := d.ipcKind(n, path); ok {
			*dst = k
		}
	}}
}

func (d *decoder) accessField(name string, dst *ipc.Access) field {
	return field{name, func(n ast.Node, path string) {
		if a, ok := d.ipcAccess(n, path); ok {
			*dst = a
		}
	}}
}

func (d *decoder) ipcKind(n ast.Node, path string) (ipc.Kind, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, false
	}
	k, err := ipc.ParseKind(s)
	if err != nil {
		d.fail(d.at(n, path), path, ErrInvalidValue, "%s is not an IPC object kind (use %s)", quote(s), kindList())
		return 0, false
	}
	return k, true
}

func (d *decoder) ipcAccess(n ast.Node, path string) (ipc.Access, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, false
	}
	a, err := ipc.ParseAccess(s)
	if err != nil {
		d.fail(d.at(n, path), path, ErrInvalidValue, "%s is not an access (use read, write or readwrite)", quote(s))
		return 0, false
	}
	return a, true
}

func kindList() string {
	names := make([]string, len(ipc.AllKinds))
	for i, k := range ipc.AllKinds {
		names[i] = k.String()
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func validKind(k ipc.Kind) bool { return slices.Contains(ipc.AllKinds, k) }

// ipcReason is the text of an error from package ipc without the sentinel's
// words in front: the field path already says what kind of value it is.
func ipcReason(err error) string {
	s := err.Error()
	for _, sentinel := range []error{ipc.ErrBadName, ipc.ErrNameTooLong, ipc.ErrInvalid} {
		if errors.Is(err, sentinel) {
			s = strings.TrimPrefix(s, sentinel.Error()+": ")
		}
	}
	return s
}

// isPolicyName reports whether s is a valid metadata.name.
func isPolicyName(s string) bool {
	return len(s) <= 63 && isDNSLabel(s, false)
}

// channelObject returns what the object a channel creates when it is absent
// counts against the quota (shm and region: size; mq: maxMsg × msgSize; a
// pipe: pipeBytes), and whether the channel creates one: a pipe channel
// always may, others when they give sizes. The sizes must be in range.
func channelObject(c ipc.Channel) (int64, bool) {
	switch c.Kind {
	case ipc.Pipe:
		return int64(pipeBytes), true
	case ipc.Shm, ipc.Region:
		return c.Size, c.Size > 0
	case ipc.MQ:
		return c.MaxMsg * c.MsgSize, c.MaxMsg > 0 && c.MsgSize > 0
	}
	return 0, false
}

// ipcGrants checks spec.ipc. Beyond each value, it checks what the broker
// would refuse when the app starts: a channel no grant allows, one larger
// than its grant or the quota, more channels than maxObjects.
func (v *validator) ipcGrants(g *ipc.Grants) {
	const base = "spec.ipc"
	before := len(v.errs)
	if g.MaxObjects < 0 || g.MaxObjects > maxIPCObjects {
		v.add(base+".maxObjects", ErrInvalidValue, "must be between 0 and %d, got %d", maxIPCObjects, g.MaxObjects)
	}
	if g.MaxBytes < 0 {
		v.add(base+".maxBytes", ErrInvalidValue, "must not be negative")
	}
	if len(g.Create) > 0 {
		if g.MaxObjects == 0 {
			v.add(base+".maxObjects", ErrInvalidValue, "0 with create grants: the app could create nothing (leave maxObjects out for the default, %d)", DefaultIPCMaxObjects)
		}
		createsPipes := slices.ContainsFunc(g.Create, func(c ipc.CreateGrant) bool { return slices.Contains(c.Kinds, ipc.Pipe) })
		switch {
		case g.MaxBytes == 0:
			v.add(base+".maxBytes", ErrInvalidValue, "0 with create grants: the app could create nothing (leave maxBytes out for the default, %s)", DefaultIPCMaxBytes)
		case g.MaxBytes > 0 && g.MaxBytes < int64(pipeBytes) && createsPipes:
			v.add(base+".maxBytes", ErrInvalidValue, "%s is less than the %s a pipe counts against it: the app could create no pipe", Size(g.MaxBytes), pipeBytes)
		}
	}
	for i, c := range g.Create {
		path := indexPath(base+".create", i)
		v.ipcNames(path+".names", c.Names)
		v.ipcKinds(path+".kinds", c.Kinds)
		switch {
		case c.MaxSize < 0:
			v.add(path+".maxSize", ErrInvalidValue, "must not be negative")
		case g.MaxBytes > 0 && c.MaxSize > g.MaxBytes:
			v.add(path+".maxSize", ErrInvalidValue, "%s is more than maxBytes, %s: no object could be that large (lower maxSize or raise maxBytes)", Size(c.MaxSize), Size(g.MaxBytes))
		case c.MaxSize > 0 && c.MaxSize < int64(pipeBytes) && c.MaxSize < g.MaxBytes && slices.Contains(c.Kinds, ipc.Pipe):
			v.add(path+".maxSize", ErrInvalidValue, "%s is less than the %s a pipe counts: the grant could create no pipe (raise maxSize)", Size(c.MaxSize), pipeBytes)
		}
		v.policyNames(path+".peers", c.Peers)
	}
	for i, a := range g.Attach {
		path := indexPath(base+".attach", i)
		v.ipcNames(path+".names", a.Names)
		v.ipcKinds(path+".kinds", a.Kinds)
		switch {
		case a.Access == 0:
			v.add(path+".access", ErrMissingField, "required (read, write or readwrite)")
		case a.Access > ipc.ReadWrite:
			v.add(path+".access", ErrInvalidValue, "%s is not an access (use read, write or readwrite)", a.Access)
		}
		v.policyNames(path+".owners", a.Owners)
	}
	v.ipcChannels(g)
	if g.POSIXMQ && !slices.ContainsFunc(g.Create, func(c ipc.CreateGrant) bool { return slices.Contains(c.Kinds, ipc.MQ) }) &&
		!slices.ContainsFunc(g.Attach, func(a ipc.AttachGrant) bool { return slices.Contains(a.Kinds, ipc.MQ) }) {
		v.add(base+".posixMQ", ErrInvalidValue, "needs a create or attach grant with kind mq: without one every mq_open(3) of the app is refused (add a grant, or write posixMQ: false)")
	}
	if len(v.errs) == before {
		// The broker's own check, last: it should find nothing the checks
		// above missed.
		if err := g.Validate(); err != nil {
			v.add(base, ErrInvalidValue, "%s", ipcReason(err))
		}
	}
}

func (v *validator) ipcNames(path string, names []string) {
	if len(names) == 0 {
		v.add(path, ErrMissingField, "required (name patterns such as results/* or jobs/**)")
		return
	}
	seen := map[string]bool{}
	for j, n := range names {
		p := indexPath(path, j)
		if err := ipc.ValidPattern(n); err != nil {
			v.add(p, ErrInvalidValue, "%s", ipcReason(err))
			continue
		}
		if seen[n] {
			v.add(p, ErrDuplicateField, "%s is listed twice", quote(n))
		}
		seen[n] = true
	}
}

func (v *validator) ipcKinds(path string, kinds []ipc.Kind) {
	if len(kinds) == 0 {
		v.add(path, ErrMissingField, "required (%s)", kindList())
		return
	}
	seen := map[ipc.Kind]bool{}
	for j, k := range kinds {
		p := indexPath(path, j)
		switch {
		case !validKind(k):
			v.add(p, ErrInvalidValue, "%s is not an IPC object kind (use %s)", k, kindList())
		case seen[k]:
			v.add(p, ErrDuplicateField, "%s is listed twice", k)
		}
		seen[k] = true
	}
}

func (v *validator) policyNames(path string, names []string) {
	seen := map[string]bool{}
	for j, n := range names {
		p := indexPath(path, j)
		switch {
		case !isPolicyName(n):
			v.add(p, ErrInvalidValue, "%s is not a policy name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)", quote(n))
		case seen[n]:
			v.add(p, ErrDuplicateField, "%s is listed twice", n)
		}
		seen[n] = true
	}
}

func (v *validator) ipcChannels(g *ipc.Grants) {
	const base = "spec.ipc.channels"
	seen := map[string]string{}
	var objects int
	var bytes int64
	for i, c := range g.Channels {
		path := indexPath(base, i)
		ok := true
		switch err := ipc.ValidName(c.Name); {
		case c.Name == "":
			v.add(path+".name", ErrMissingField, "required (the object name, such as results/main)")
			ok = false
		case err != nil:
			v.add(path+".name", ErrInvalidValue, "%s", ipcReason(err))
			ok = false
		default:
			if first, dup := seen[c.Name]; dup {
				v.add(path+".name", ErrDuplicateField, "channel %s is already listed at %s", c.Name, first)
				ok = false
			}
			seen[c.Name] = path
		}
		switch {
		case c.Kind == 0:
			v.add(path+".kind", ErrMissingField, "required (%s)", kindList())
			ok = false
		case !validKind(c.Kind):
			v.add(path+".kind", ErrInvalidValue, "%s is not an IPC object kind (use %s)", c.Kind, kindList())
			ok = false
		}
		switch {
		case c.Access == 0:
			v.add(path+".access", ErrMissingField, "required (read, write or readwrite)")
			ok = false
		case c.Access > ipc.ReadWrite:
			v.add(path+".access", ErrInvalidValue, "%s is not an access (use read, write or readwrite)", c.Access)
			ok = false
		case c.Kind == ipc.Pipe && c.Access == ipc.ReadWrite:
			v.add(path+".access", ErrInvalidValue, "a pipe channel is one end of the pipe: write access: read or access: write")
			ok = false
		}
		if !channelSizes(v, path, c.Kind, c.Size, c.MaxMsg, c.MsgSize) || !ok {
			continue
		}
		size, creates := channelObject(c)
		cg := firstCreateGrant(g, c.Name, c.Kind)
		switch {
		case c.Kind == ipc.Pipe && cg < 0:
			// Without a create grant, a pipe channel attaches.
			v.attachChannel(g, path, c)
		case !creates:
			v.attachChannel(g, path, c)
		case v.createChannel(g, path, c, cg, size):
			objects++
			if size > math.MaxInt64-bytes {
				bytes = math.MaxInt64
			} else {
				bytes += size
			}
		}
	}
	// Objects created at start count against the quota like any other.
	if g.MaxObjects > 0 && objects > g.MaxObjects {
		v.add(base, ErrInvalidValue, "%d channels create objects at start, more than maxObjects (%d): the app would fail to start (raise maxObjects)", objects, g.MaxObjects)
	}
	if g.MaxBytes > 0 && bytes > g.MaxBytes {
		v.add(base, ErrInvalidValue, "the channels that create objects at start need %s, more than maxBytes (%s): the app would fail to start (raise maxBytes or shrink the channels)", Size(bytes), Size(g.MaxBytes))
	}
}

// channelSizes checks the sizes of a channel of kind k (of a policy or an
// app group) against what the kind has; it reports whether they are usable.
func channelSizes(v *validator, path string, k ipc.Kind, size, maxMsg, msgSize int64) bool {
	before := len(v.errs)
	if maxMsg != 0 && k != ipc.MQ {
		v.add(path+".maxMsg", ErrInvalidValue, "applies only to mq channels")
	}
	if msgSize != 0 && k != ipc.MQ {
		v.add(path+".msgSize", ErrInvalidValue, "applies only to mq channels")
	}
	switch k {
	case ipc.Pipe:
		if size != 0 {
			v.add(path+".size", ErrInvalidValue, "a pipe has no size (remove size)")
		}
	case ipc.Shm, ipc.Region:
		if size < 0 || size > int64(maxIPCObjectSize) {
			v.add(path+".size", ErrInvalidValue, "must be between 0 and %s (the broker's limit), got %s", maxIPCObjectSize, Size(size))
		}
	case ipc.MQ:
		if size != 0 {
			v.add(path+".size", ErrInvalidValue, "applies only to shm and region channels (a queue is sized by maxMsg and msgSize)")
		}
		if maxMsg < 0 || maxMsg > maxMQMsgs {
			v.add(path+".maxMsg", ErrInvalidValue, "must be between 0 and %d (the kernel's limit), got %d", maxMQMsgs, maxMsg)
		}
		if msgSize < 0 || msgSize > int64(maxMQMsgSize) {
			v.add(path+".msgSize", ErrInvalidValue, "must be between 0 and %s (the kernel's limit), got %s", maxMQMsgSize, Size(msgSize))
		}
		switch {
		case maxMsg > 0 && msgSize == 0:
			v.add(path+".msgSize", ErrMissingField, "required with maxMsg (the largest message, e.g. 8Ki)")
		case maxMsg == 0 && msgSize > 0:
			v.add(path+".maxMsg", ErrMissingField, "required with msgSize (the number of messages the queue holds, e.g. 10)")
		}
	}
	return len(v.errs) == before
}

// firstCreateGrant returns the index of the create grant that decides
// whether name of kind k may be created, the first that matches (as
// ipc.Grants.CreateGrantFor), or -1.
func firstCreateGrant(g *ipc.Grants, name string, k ipc.Kind) int {
	return slices.IndexFunc(g.Create, func(cg ipc.CreateGrant) bool {
		return slices.Contains(cg.Kinds, k) && slices.ContainsFunc(cg.Names, func(p string) bool {
			return ipc.ValidPattern(p) == nil && ipc.Match(p, name)
		})
	})
}

// createChannel checks that a channel that creates its object when it is
// absent has a create grant, i, that allows an object of that size, and
// reports whether it has.
func (v *validator) createChannel(g *ipc.Grants, path string, c ipc.Channel, i int, size int64) bool {
	what := channelSizeText(c)
	if i < 0 {
		v.add(path, ErrInvalidValue, "creates %s %s (%s) when it is absent, but no create grant allows that: the app would fail to start (add a create grant whose names match %s with kind %s, or drop %s to attach an object another app created)",
			c.Kind, c.Name, what, c.Name, c.Kind, sizeFields(c.Kind))
		return false
	}
	limit, from := g.Create[i].MaxSize, fmt.Sprintf("maxSize of spec.ipc.create[%d]", i)
	if limit == 0 {
		limit, from = g.MaxBytes, "maxBytes"
	}
	if limit > 0 && size > limit {
		v.add(path, ErrInvalidValue, "%s is more than the %s, %s: the app would fail to start (shrink the channel or raise the limit)", what, from, Size(limit))
		return false
	}
	return true
}

// attachChannel checks that a channel that only attaches has an attach grant
// that allows it.
func (v *validator) attachChannel(g *ipc.Grants, path string, c ipc.Channel) {
	near := -1
	for i, a := range g.Attach {
		if !slices.Contains(a.Kinds, c.Kind) || !slices.ContainsFunc(a.Names, func(p string) bool {
			return ipc.ValidPattern(p) == nil && ipc.Match(p, c.Name)
		}) {
			continue
		}
		if a.Access.Allows(c.Access) {
			return
		}
		if near < 0 {
			near = i
		}
	}
	if near >= 0 {
		v.add(path+".access", ErrInvalidValue, "%s, but spec.ipc.attach[%d], the grant for %s %s, allows only %s: the app would fail to start (raise the grant's access or lower the channel's)",
			c.Access, near, c.Kind, c.Name, g.Attach[near].Access)
		return
	}
	hint := fmt.Sprintf("add an attach grant such as {names: [%s], kinds: [%s], access: %s}", c.Name, c.Kind, c.Access)
	what := "no attach grant"
	if c.Kind == ipc.Pipe {
		hint += ", or a create grant for the pipe"
		what = "no create or attach grant"
	} else {
		hint += fmt.Sprintf(", or give the channel %s to create the object", sizeFields(c.Kind))
	}
	v.add(path, ErrInvalidValue, "attaches %s %s for %s, but %s allows that: the app would fail to start (%s)", c.Kind, c.Name, c.Access, what, hint)
}

func sizeFields(k ipc.Kind) string {
	if k == ipc.MQ {
		return "maxMsg and msgSize"
	}
	return "size"
}

func channelSizeText(c ipc.Channel) string {
	switch c.Kind {
	case ipc.MQ:
		return fmt.Sprintf("maxMsg %d × msgSize %s = %s", c.MaxMsg, Size(c.MsgSize), Size(c.MaxMsg*c.MsgSize))
	case ipc.Pipe:
		return fmt.Sprintf("a pipe counts %s", pipeBytes)
	}
	return "size " + Size(c.Size).String()
}

// ipcTree encodes spec.ipc with every field spelt out.
func ipcTree(g *ipc.Grants) *ymap {
	m := &ymap{}
	m.set("maxObjects", strconv.Itoa(g.MaxObjects))
	m.set("maxBytes", Size(g.MaxBytes).String())
	m.set("posixMQ", yamlBool(g.POSIXMQ))
	create := yseq{}
	for _, c := range g.Create {
		create = append(create, (&ymap{}).
			set("names", stringSeq(c.Names)).
			set("kinds", kindSeq(c.Kinds)).
			set("maxSize", Size(c.MaxSize).String()).
			set("persistent", yamlBool(c.Persistent)).
			set("peers", stringSeq(c.Peers)))
	}
	m.set("create", create)
	attach := yseq{}
	for _, a := range g.Attach {
		attach = append(attach, (&ymap{}).
			set("names", stringSeq(a.Names)).
			set("kinds", kindSeq(a.Kinds)).
			set("access", a.Access.String()).
			set("owners", stringSeq(a.Owners)))
	}
	m.set("attach", attach)
	channels := yseq{}
	for _, c := range g.Channels {
		cm := (&ymap{}).set("name", yamlString(c.Name)).set("kind", c.Kind.String()).set("access", c.Access.String())
		channels = append(channels, setSizes(cm, c.Kind, c.Size, c.MaxMsg, c.MsgSize))
	}
	m.set("channels", channels)
	return m
}

// setSizes adds to a channel's mapping the sizes its kind has; the others
// are 0.
func setSizes(m *ymap, k ipc.Kind, size, maxMsg, msgSize int64) *ymap {
	switch k {
	case ipc.Shm, ipc.Region:
		m.set("size", Size(size).String())
	case ipc.MQ:
		m.set("maxMsg", strconv.FormatInt(maxMsg, 10))
		m.set("msgSize", Size(msgSize).String())
	}
	return m
}

func stringSeq(ss []string) yseq {
	out := yseq{}
	for _, s := range ss {
		out = append(out, yamlString(s))
	}
	return out
}

func kindSeq(ks []ipc.Kind) yseq {
	out := yseq{}
	for _, k := range ks {
		out = append(out, k.String())
	}
	return out
}
