package policy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/pinfold/pinfold/ipc"
)

// GroupKind is the kind of a `pinfold up` file: apps started together and the
// channels between them.
const GroupKind = "AppGroup"

// Group is a parsed `pinfold up` file (docs/up.md). It is plain data: the
// caller resolves the policies, creates the channels and starts the apps.
type Group struct {
	// Name is the group's metadata.name, a DNS label.
	Name string
	// Dir is the absolute directory of the file: relative bind sources
	// and policy paths were resolved against it.
	Dir string
	// Channels are the IPC objects the group creates before its apps
	// start, in file order.
	Channels []GroupChannel
	// Apps are the apps, in file order.
	Apps []GroupApp
}

// GroupChannel is one object the group creates and hands to some of its
// apps, each of which gets a pre-wired descriptor for it.
type GroupChannel struct {
	// Name is the object name (ipc.ValidName).
	Name string
	Kind ipc.Kind
	// Size is the size of a shm or region object; 0 for other kinds.
	Size int64
	// MaxMsg and MsgSize are the attributes of an mq object; 0 for other
	// kinds.
	MaxMsg, MsgSize int64
	// Apps maps the name of each app that gets the channel to its access.
	Apps map[string]ipc.Access
	// Members lists Apps in file order.
	Members []ChannelMember
}

// ChannelMember is one app of a channel and its access.
type ChannelMember struct {
	App    string
	Access ipc.Access
}

// GroupApp is one app of a group.
type GroupApp struct {
	// Name is a DNS label, unique in the group; it prefixes the app's
	// output.
	Name string
	// Policy is the policy as written: a policy name ("default", or one
	// the caller looks up) or the path of a policy file. DefaultGroupPolicy
	// when the file leaves it out.
	Policy string
	// PolicyPath is the absolute path of the policy file when Policy names
	// a file, else "".
	PolicyPath string
	// Command is the program and its arguments.
	Command []string
	// Env holds variables added to the policy's environment, replacing
	// those of the same name.
	Env map[string]string
	// ReadOnly and ReadWrite are bind mounts added to the policy's
	// filesystem; their sources are absolute.
	ReadOnly, ReadWrite []Bind
}

// DefaultGroupPolicy is the policy of an app whose entry names none.
const DefaultGroupPolicy = "default"

var groupDoc = docKind{"group", "group file"}

// groupExample is the group name error messages suggest.
const groupExample = "ipc-pipeline"

// ParseGroupFile reads and parses the group file at path. See ParseGroup.
func ParseGroupFile(path string) (*Group, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading group file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading group file: %w", err)
	}
	return ParseGroup(data, path)
}

// ParseGroup decodes and validates a group file read from path: path names
// the file in error messages, and relative bind sources and policy paths are
// resolved against its directory (made absolute against the working
// directory). Validation stats every bind source and policy file, so the
// group is checked against this host as it is when ParseGroup runs. It reads
// no policy file: the caller loads each app's policy, adds the app's binds,
// environment and IPC grants to it, and validates the result.
//
// On failure the error is an ErrorList holding every problem found in the
// file, each with its line and column, sorted by position.
func ParseGroup(data []byte, path string) (*Group, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("resolving the directory of group file %s: %w", path, err)
	}
	d := newDecoder(path, groupDoc)
	g := &Group{Dir: dir}
	var apiVersion, kind string
	if root, ok := d.document(data); ok && d.group(root, g, &apiVersion, &kind) {
		v := &validator{}
		v.header(apiVersion, kind, GroupKind, g.Name, groupExample)
		v.group(g)
		d.place(v.errs)
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return g, nil
}

// Validate checks a group built or changed in code as ParseGroup does,
// except for apiVersion and kind, which a Group does not hold. It returns an
// ErrorList (without file positions) or nil.
func (g *Group) Validate() error {
	v := &validator{}
	v.metadataName(g.Name, groupExample)
	v.group(g)
	return v.errs.err()
}

// ChannelsFor returns the pre-wired channels of app, in file order: each
// channel the app is listed on, with the app's access. Sizes are zero: the
// channels only attach objects the group created.
func (g *Group) ChannelsFor(app string) []ipc.Channel {
	var out []ipc.Channel
	for _, c := range g.Channels {
		if a, ok := c.Apps[app]; ok {
			out = append(out, ipc.Channel{Name: c.Name, Kind: c.Kind, Access: a})
		}
	}
	return out
}

// AttachGrantsFor returns the attach grants app needs for its channels: one
// per channel it is listed on, in file order, for that name exactly, its kind
// and the app's access, limited to objects owned by apps of groupPolicy (the
// policy under which the caller creates the group's channels).
func (g *Group) AttachGrantsFor(app, groupPolicy string) []ipc.AttachGrant {
	var out []ipc.AttachGrant
	for _, c := range g.Channels {
		if a, ok := c.Apps[app]; ok {
			out = append(out, ipc.AttachGrant{
				Names:  []string{c.Name},
				Kinds:  []ipc.Kind{c.Kind},
				Access: a,
				Owners: []string{groupPolicy},
			})
		}
	}
	return out
}

// group decodes the document; it reports false when the document is not a
// mapping.
func (d *decoder) group(root ast.Node, g *Group, apiVersion, kind *string) bool {
	d.values[""] = posOf(root)
	return d.mapping(root, "",
		d.strField("apiVersion", apiVersion),
		d.strField("kind", kind),
		field{"metadata", func(n ast.Node, path string) {
			d.mapping(n, path, d.strField("name", &g.Name))
		}},
		field{"spec", func(n ast.Node, path string) {
			d.mapping(n, path,
				field{"channels", func(n ast.Node, path string) {
					d.sequence(n, path, func(n ast.Node, path string) {
						g.Channels = append(g.Channels, d.groupChannel(n, path))
					})
				}},
				field{"apps", func(n ast.Node, path string) {
					d.sequence(n, path, func(n ast.Node, path string) {
						g.Apps = append(g.Apps, d.groupApp(n, path, g.Dir))
					})
				}},
			)
		}},
	)
}

func (d *decoder) groupChannel(n ast.Node, path string) GroupChannel {
	var c GroupChannel
	d.mapping(n, path,
		d.strField("name", &c.Name),
		d.kindField("kind", &c.Kind),
		d.int64SizeField("size", &c.Size),
		intField(d, "maxMsg", &c.MaxMsg, 0, maxMQMsgs),
		d.int64SizeField("msgSize", &c.MsgSize),
		field{"apps", func(n ast.Node, path string) {
			es, _ := d.entries(n, path)
			for _, e := range es {
				// Problems with the app's name are reported at the key.
				d.values[e.path] = e.keyPos
				a, _ := d.ipcAccess(e.value, e.path)
				if c.Apps == nil {
					c.Apps = map[string]ipc.Access{}
				}
				c.Apps[e.key] = a
				c.Members = append(c.Members, ChannelMember{App: e.key, Access: a})
			}
		}},
	)
	return c
}

func (d *decoder) groupApp(n ast.Node, path, dir string) GroupApp {
	a := GroupApp{Policy: DefaultGroupPolicy}
	binds := func(name string, dst *[]Bind) field {
		return field{name, func(n ast.Node, path string) {
			d.sequence(n, path, func(n ast.Node, path string) {
				var b Bind
				if s, ok := d.str(n, path); ok {
					b, ok = parseBind(s)
					if !ok {
						d.fail(d.at(n, path), path, ErrInvalidValue, "%s has more than one ':' (write PATH or SRC:DST)", quote(s))
					} else if b.Source != "" {
						b.Source = resolve(dir, b.Source)
					}
				}
				*dst = append(*dst, b)
			})
		}}
	}
	d.mapping(n, path,
		d.strField("name", &a.Name),
		field{"policy", func(n ast.Node, path string) {
			if s, ok := d.str(n, path); ok {
				a.Policy = s
			}
		}},
		field{"command", func(n ast.Node, path string) {
			d.sequence(n, path, func(n ast.Node, path string) {
				s, _ := d.scalar(n, path)
				a.Command = append(a.Command, s)
			})
		}},
		field{"env", func(n ast.Node, path string) { a.Env = d.env(n, path) }},
		binds("bind", &a.ReadOnly),
		binds("bindWrite", &a.ReadWrite),
	)
	if a.Policy != "" && !isPolicyName(a.Policy) {
		a.PolicyPath = resolve(dir, a.Policy)
	}
	return a
}

// resolve makes a path from a group file absolute: relative to dir.
func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// scalar returns a scalar's text as written: numbers and booleans are taken
// as strings (command: [sleep, 10]).
func (d *decoder) scalar(n ast.Node, path string) (string, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return "", false
	}
	s, ok := scalarText(n)
	if !ok {
		d.typeError(n, path, "a string")
		return "", false
	}
	return s, true
}

// group checks the apps and channels of a group.
func (v *validator) group(g *Group) {
	const apps = "spec.apps"
	if len(g.Apps) == 0 {
		v.add(apps, ErrMissingField, "required: at least one app (e.g. - {name: worker, policy: default, command: [/bin/true]})")
	}
	names := map[string]string{} // app name -> path of its entry
	var appNames []string
	for i := range g.Apps {
		a := &g.Apps[i]
		path := indexPath(apps, i)
		switch {
		case a.Name == "":
			v.add(path+".name", ErrMissingField, "required (a name such as producer; it prefixes the app's output)")
		case !isPolicyName(a.Name):
			v.add(path+".name", ErrInvalidValue, "%s is not a valid app name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)", quote(a.Name))
		default:
			if first, dup := names[a.Name]; dup {
				v.add(path+".name", ErrDuplicateField, "app %s is already defined at %s", a.Name, first)
			} else {
				names[a.Name] = path
				appNames = append(appNames, a.Name)
			}
		}
		v.groupAppPolicy(path+".policy", a)
		v.command(path+".command", a.Command)
		v.envAt(path+".env", a.Env)
		dsts := map[string]string{}
		v.groupBinds(path+".bind", a.ReadOnly, dsts)
		v.groupBinds(path+".bindWrite", a.ReadWrite, dsts)
	}
	seen := map[string]string{}
	for i := range g.Channels {
		c := &g.Channels[i]
		path := indexPath("spec.channels", i)
		switch err := ipc.ValidName(c.Name); {
		case c.Name == "":
			v.add(path+".name", ErrMissingField, "required (the object name, such as ring)")
		case err != nil:
			v.add(path+".name", ErrInvalidValue, "%s", ipcReason(err))
		default:
			if first, dup := seen[c.Name]; dup {
				v.add(path+".name", ErrDuplicateField, "channel %s is already defined at %s", c.Name, first)
			}
			seen[c.Name] = path
		}
		switch {
		case c.Kind == 0:
			v.add(path+".kind", ErrMissingField, "required (%s)", kindList())
		case !validKind(c.Kind):
			v.add(path+".kind", ErrInvalidValue, "%s is not an IPC object kind (use %s)", c.Kind, kindList())
		default:
			if channelSizes(v, path, c.Kind, c.Size, c.MaxMsg, c.MsgSize) {
				// The group creates every channel: it needs the sizes.
				switch c.Kind {
				case ipc.Shm, ipc.Region:
					if c.Size == 0 {
						v.add(path+".size", ErrMissingField, "required: the group creates the %s (e.g. 64Mi)", c.Kind)
					}
				case ipc.MQ:
					if c.MaxMsg == 0 && c.MsgSize == 0 {
						v.add(path+".maxMsg", ErrMissingField, "required: the group creates the queue (the number of messages it holds, e.g. 10)")
						v.add(path+".msgSize", ErrMissingField, "required: the group creates the queue (the largest message, e.g. 8Ki)")
					}
				}
			}
		}
		v.channelMembers(path+".apps", c, names, appNames)
	}
}

func (v *validator) groupAppPolicy(path string, a *GroupApp) {
	switch {
	case a.Policy == "":
		v.add(path, ErrMissingField, "required (a policy name such as default, or the path of a policy file)")
	case a.PolicyPath == "":
		if !isPolicyName(a.Policy) {
			v.add(path, ErrInvalidValue, "%s is not a policy name and no policy file was resolved for it", quote(a.Policy))
		}
	case strings.IndexByte(a.PolicyPath, 0) >= 0:
		v.add(path, ErrInvalidValue, "path contains a NUL byte")
	default:
		fi, err := os.Stat(a.PolicyPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			v.errs = append(v.errs, &FieldError{Path: path, Err: err, Msg: fmt.Sprintf(
				"policy file %s does not exist (policy is a policy name, lowercase letters, digits and '-', or the path of a policy file relative to the group file)", a.PolicyPath)})
		case err != nil:
			v.errs = append(v.errs, &FieldError{Path: path, Err: err, Msg: err.Error()})
		case !fi.Mode().IsRegular():
			v.add(path, ErrInvalidValue, "policy file %s is not a regular file", a.PolicyPath)
		}
	}
}

func (v *validator) command(path string, cmd []string) {
	if len(cmd) == 0 {
		v.add(path, ErrMissingField, "required (the program and its arguments, e.g. [python3, /app/main.py])")
		return
	}
	if cmd[0] == "" {
		v.add(indexPath(path, 0), ErrInvalidValue, "the program is empty")
	}
	for j, arg := range cmd {
		if strings.IndexByte(arg, 0) >= 0 {
			v.add(indexPath(path, j), ErrInvalidValue, "contains a NUL byte")
		}
	}
}

// groupBinds checks an app's binds; dsts maps the destinations seen so far
// to the entries that mount them.
func (v *validator) groupBinds(base string, binds []Bind, dsts map[string]string) {
	for j, b := range binds {
		path := indexPath(base, j)
		switch {
		case b.Source == "":
			v.add(path, ErrInvalidValue, "empty source (write PATH or SRC:DST)")
			continue
		case !filepath.IsAbs(b.Source):
			v.add(path, ErrInvalidValue, "the source %s is not an absolute path", quote(b.Source))
			continue
		case strings.IndexByte(b.Source, 0) >= 0 || strings.IndexByte(b.Destination, 0) >= 0:
			v.add(path, ErrInvalidValue, "path contains a NUL byte")
			continue
		}
		if msg := pathProblem(b.Destination); msg != "" {
			v.add(path, ErrInvalidValue, "destination: %s (write SRC:DST with an absolute DST)", msg)
			continue
		}
		if !v.mountPoint(path, b.Destination, false) {
			continue
		}
		if first, dup := dsts[b.Destination]; dup {
			v.add(path, ErrInvalidValue, "%s is already mounted by %s", b.Destination, first)
			continue
		}
		dsts[b.Destination] = path
		if _, err := os.Stat(b.Source); err != nil {
			msg := err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				msg = b.Source + " does not exist on this host"
			}
			v.errs = append(v.errs, &FieldError{Path: path, Msg: msg, Err: err})
		}
	}
}

// channelMembers checks the apps of a channel: each an app of the group with
// an access the kind allows, and for a pipe a reader and a writer.
func (v *validator) channelMembers(path string, c *GroupChannel, names map[string]string, appNames []string) {
	members := c.Members
	if members == nil {
		for _, app := range sortedKeys(c.Apps) {
			members = append(members, ChannelMember{app, c.Apps[app]})
		}
	} else if len(members) != len(c.Apps) || slices.ContainsFunc(members, func(m ChannelMember) bool {
		a, ok := c.Apps[m.App]
		return !ok || a != m.Access
	}) {
		v.add(path, ErrInvalidValue, "Members and Apps differ: Members must list the entries of Apps")
		return
	}
	if len(members) == 0 {
		v.add(path, ErrMissingField, "required (the apps that get the channel and their access, e.g. {producer: write, consumer: read})")
		return
	}
	valid := true
	var readers, writers int
	for _, m := range members {
		mpath := fieldPath(path, m.App)
		if _, ok := names[m.App]; !ok {
			hint := "the group's apps are " + strings.Join(appNames, ", ")
			if s := suggest(m.App, appNames); s != "" {
				hint = "did you mean " + s + "?"
			} else if len(appNames) == 0 {
				hint = "the group has no apps"
			}
			v.add(mpath, ErrInvalidValue, "%s is not an app of this group (%s)", quote(m.App), hint)
		}
		switch {
		case m.Access == 0:
			v.add(mpath, ErrMissingField, "required (read, write or readwrite)")
			valid = false
		case m.Access > ipc.ReadWrite:
			v.add(mpath, ErrInvalidValue, "%s is not an access (use read, write or readwrite)", m.Access)
			valid = false
		case c.Kind == ipc.Pipe && m.Access == ipc.ReadWrite:
			v.add(mpath, ErrInvalidValue, "an app gets one end of a pipe: write read or write")
			valid = false
		}
		if m.Access&ipc.Read != 0 {
			readers++
		}
		if m.Access&ipc.Write != 0 {
			writers++
		}
	}
	if c.Kind != ipc.Pipe || !valid {
		return
	}
	switch {
	case readers == 0:
		v.add(path, ErrInvalidValue, "a pipe needs an app that reads it: no app has access read (give one read)")
	case writers == 0:
		v.add(path, ErrInvalidValue, "a pipe needs an app that writes it: no app has access write (give one write)")
	}
}

// Channel returns the channel as the group's own session creates it.
func (c *GroupChannel) Channel() ipc.Channel {
	return ipc.Channel{Name: c.Name, Kind: c.Kind, Access: ipc.ReadWrite, Size: c.Size, MaxMsg: c.MaxMsg, MsgSize: c.MsgSize}
}

// OwnerGrants are the grants of the session that creates the group's
// channels: exactly those objects, each under its own create grant, and a
// quota that fits them all.
func (g *Group) OwnerGrants() ipc.Grants {
	var gr ipc.Grants
	for _, c := range g.Channels {
		size := c.Size
		switch c.Kind {
		case ipc.Pipe:
			size = ipc.PipeBytes
		case ipc.MQ:
			size = c.MaxMsg * c.MsgSize
		}
		gr.Create = append(gr.Create, ipc.CreateGrant{Names: []string{c.Name}, Kinds: []ipc.Kind{c.Kind}, MaxSize: size})
		gr.MaxBytes += size
	}
	gr.MaxObjects = len(g.Channels)
	return gr
}
