package daemon

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/sandbox/events"
	"github.com/pinfold/pinfold/sandbox/policy"
)

// policyService implements the PolicyService API.
type policyService struct{ d *Daemon }

// reloadPolicies rereads the policy directory (at start, on SIGHUP, on
// request) and records what happened as events.
func (d *Daemon) reloadPolicies(parent uint64) policy.Report {
	rep := d.policies.Load()
	id := d.events.Emit(events.Event{Kind: events.PolicyReloaded, Parent: parent, Value: int64(len(rep.Loaded)), Detail: d.cfg.PolicyDir})
	for _, e := range rep.Loaded {
		d.events.Emit(events.Event{Kind: events.PolicyApplied, Parent: id, Detail: e.Name})
	}
	for _, r := range rep.Rejected {
		d.events.Emit(events.Event{Kind: events.PolicyRejected, Parent: id, Detail: r.File})
		d.log.Warn("policy file rejected; the previous version of its policy stays active", "file", r.File, "err", r.Err)
	}
	for _, name := range rep.Removed {
		d.events.Emit(events.Event{Kind: events.PolicyDeleted, Parent: id, Detail: name})
	}
	return rep
}

// Reload is what SIGHUP does.
func (d *Daemon) Reload() policy.Report { return d.reloadPolicies(0) }

func policyProto(e *policy.Entry, withYAML bool) *v1.Policy {
	p := &v1.Policy{Name: e.Name, Hash: e.Hash, File: e.File, Loaded: timeProto(e.Loaded)}
	if withYAML {
		p.Yaml = e.YAML
	}
	return p
}

// policyErrors turns a validation failure into the API's error list.
func policyErrors(file string, err error) []*v1.PolicyError {
	var list policy.ErrorList
	if errors.As(err, &list) {
		out := make([]*v1.PolicyError, 0, len(list))
		for _, fe := range list {
			out = append(out, &v1.PolicyError{File: fe.File, Line: int32(fe.Line), Column: int32(fe.Column), Path: fe.Path, Message: fe.Msg})
		}
		return out
	}
	var fe *policy.FieldError
	if errors.As(err, &fe) {
		return []*v1.PolicyError{{File: fe.File, Line: int32(fe.Line), Column: int32(fe.Column), Path: fe.Path, Message: fe.Msg}}
	}
	return []*v1.PolicyError{{File: file, Message: err.Error()}}
}

func checkPolicyFile(filename, content string) error {
	if err := checkText("filename", filename, 255, false); err != nil {
		return err
	}
	if len(content) > maxPolicyLen {
		return invalidf("content: %d bytes, more than %d", len(content), maxPolicyLen)
	}
	return nil
}

func (s *policyService) List(ctx context.Context, req *connect.Request[v1.ListPoliciesRequest]) (*connect.Response[v1.ListPoliciesResponse], error) {
	resp := &v1.ListPoliciesResponse{}
	for _, e := range s.d.policies.List() {
		resp.Policies = append(resp.Policies, policyProto(e, false))
	}
	return connect.NewResponse(resp), nil
}

func (s *policyService) Get(ctx context.Context, req *connect.Request[v1.GetPolicyRequest]) (*connect.Response[v1.GetPolicyResponse], error) {
	if err := checkText("name", req.Msg.GetName(), maxNameLen, false); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	e, ok := s.d.policies.Get(req.Msg.GetName())
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no policy %q", req.Msg.GetName()))
	}
	return connect.NewResponse(&v1.GetPolicyResponse{Policy: policyProto(e, true)}), nil
}

func (s *policyService) Validate(ctx context.Context, req *connect.Request[v1.ValidatePolicyRequest]) (*connect.Response[v1.ValidatePolicyResponse], error) {
	if err := checkPolicyFile(req.Msg.GetFilename(), req.Msg.GetContent()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	e, err := s.d.policies.Validate(req.Msg.GetFilename(), []byte(req.Msg.GetContent()))
	if err != nil {
		return connect.NewResponse(&v1.ValidatePolicyResponse{Errors: policyErrors(req.Msg.GetFilename(), err)}), nil
	}
	return connect.NewResponse(&v1.ValidatePolicyResponse{Policy: policyProto(e, true)}), nil
}

// Apply stores a policy (root only: a policy can grant capabilities and
// host binds). A file that does not validate is refused with every error;
// the previous version stays active.
func (s *policyService) Apply(ctx context.Context, req *connect.Request[v1.ApplyPolicyRequest]) (*connect.Response[v1.ApplyPolicyResponse], error) {
	c := callFrom(ctx)
	if err := requireRoot(c.peer, "apply policies (a policy can grant capabilities and host binds)"); err != nil {
		return nil, err
	}
	if err := checkPolicyFile(req.Msg.GetFilename(), req.Msg.GetContent()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	e, err := s.d.policies.Apply(req.Msg.GetFilename(), []byte(req.Msg.GetContent()))
	if err != nil {
		s.d.events.Emit(events.Event{Kind: events.PolicyRejected, Parent: c.event, Detail: req.Msg.GetFilename()})
		code := connect.CodeInvalidArgument
		if errors.Is(err, policy.ErrConflict) {
			code = connect.CodeFailedPrecondition
		}
		cerr := connect.NewError(code, err)
		for _, pe := range policyErrors(req.Msg.GetFilename(), err) {
			if d, derr := connect.NewErrorDetail(pe); derr == nil {
				cerr.AddDetail(d)
			}
		}
		return nil, cerr
	}
	s.d.events.Emit(events.Event{Kind: events.PolicyApplied, Parent: c.event, Detail: e.Name})
	return connect.NewResponse(&v1.ApplyPolicyResponse{Policy: policyProto(e, true)}), nil
}

func (s *policyService) Delete(ctx context.Context, req *connect.Request[v1.DeletePolicyRequest]) (*connect.Response[v1.DeletePolicyResponse], error) {
	c := callFrom(ctx)
	if err := requireRoot(c.peer, "delete policies"); err != nil {
		return nil, err
	}
	if err := checkText("name", req.Msg.GetName(), maxNameLen, false); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := s.d.policies.Delete(req.Msg.GetName()); err != nil {
		code := connect.CodeInternal
		switch {
		case errors.Is(err, policy.ErrNotFound):
			code = connect.CodeNotFound
		case errors.Is(err, policy.ErrBuiltin):
			code = connect.CodeFailedPrecondition
		}
		return nil, connect.NewError(code, err)
	}
	s.d.events.Emit(events.Event{Kind: events.PolicyDeleted, Parent: c.event, Detail: req.Msg.GetName()})
	return connect.NewResponse(&v1.DeletePolicyResponse{}), nil
}

func (s *policyService) Reload(ctx context.Context, req *connect.Request[v1.ReloadPoliciesRequest]) (*connect.Response[v1.ReloadPoliciesResponse], error) {
	c := callFrom(ctx)
	if err := requireRoot(c.peer, "reload policies"); err != nil {
		return nil, err
	}
	rep := s.d.reloadPolicies(c.event)
	resp := &v1.ReloadPoliciesResponse{}
	for _, e := range rep.Loaded {
		resp.Loaded = append(resp.Loaded, policyProto(e, false))
	}
	for _, r := range rep.Rejected {
		resp.Rejected = append(resp.Rejected, policyErrors(r.File, r.Err)...)
	}
	return connect.NewResponse(resp), nil
}
