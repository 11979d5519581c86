package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/events"
)

// appService implements the AppService API.
type appService struct{ d *Daemon }

// Run creates and starts an attached app and streams its stdio. If the
// client goes away, the app is killed: an attached app has nobody to read
// its output. Attached apps are removed once their exit was delivered.
func (s *appService) Run(ctx context.Context, stream *connect.BidiStream[v1.RunRequest, v1.RunResponse]) error {
	c := callFrom(ctx)
	first, err := stream.Receive()
	if err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%w: expected the app spec as the first message: %v", errInvalid, err))
	}
	start := first.GetStart()
	if start == nil {
		return connect.NewError(connect.CodeInvalidArgument, invalidf("the first message must be start (the app spec)"))
	}
	var sendMu sync.Mutex
	var stdinR, stdinW *os.File
	if start.GetStdin() {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return connect.NewError(connect.CodeInternal, err)
		}
	}
	e, err := s.d.createApp(ctx, c, start.GetSpec(), false, true, func(sp *sandbox.Spec) {
		sp.Stdout = &streamWriter{mu: &sendMu, stream: stream}
		sp.Stderr = &streamWriter{mu: &sendMu, stream: stream, stderr: true}
		if stdinR != nil {
			sp.Stdin = stdinR
		}
	})
	if stdinR != nil {
		// The app holds its own copy now (inherited at the clone): close
		// ours, so the app sees EOF when the client ends stdin.
		stdinR.Close()
	}
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return err
	}
	defer s.d.remove(e, 0)
	sendMu.Lock()
	err = stream.Send(&v1.RunResponse{Msg: &v1.RunResponse_Started{Started: e.proto()}})
	sendMu.Unlock()
	if err != nil {
		_ = e.app.Kill()
		<-e.done
		return err
	}

	// Client → app: stdin, signals, end of stdin. Stdin is written by its
	// own goroutine, so an app that does not read it cannot hold up the
	// signals and the end of stdin behind it. A receive error other than a
	// clean end of the request stream means the client is gone.
	clientGone := make(chan struct{})
	stdinCh := make(chan []byte, 16)
	go func() {
		for b := range stdinCh {
			if stdinW == nil {
				continue
			}
			if _, err := stdinW.Write(b); err != nil {
				stdinW.Close()
				stdinW = nil
			}
		}
		if stdinW != nil {
			stdinW.Close()
		}
	}()
	signalled := make(chan struct{})
	var signalOnce sync.Once
	go func() {
		defer close(stdinCh)
		for {
			req, err := stream.Receive()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				close(clientGone)
				return
			}
			switch m := req.Msg.(type) {
			case *v1.RunRequest_Stdin:
				select {
				case stdinCh <- m.Stdin:
				case <-e.done:
					return
				}
			case *v1.RunRequest_CloseStdin:
				return
			case *v1.RunRequest_Signal:
				if checkSignal(m.Signal) == nil && e.app.State() == sandbox.Running {
					e.emit(events.AppSignalled, 0, int64(m.Signal), "client")
					_ = e.app.Signal(syscall.Signal(m.Signal))
					signalOnce.Do(func() { close(signalled) })
				}
			}
		}
	}()
	// Like an embedded run: after the first signal the client forwards,
	// everything is killed if the app has not exited within its policy's
	// stopTimeout.
	go func() {
		select {
		case <-signalled:
		case <-e.done:
			return
		}
		select {
		case <-time.After(e.app.Spec().StopTimeout):
			e.emit(events.AppSignalled, 0, int64(syscall.SIGKILL), "stopTimeout after a forwarded signal")
			_ = e.app.Kill()
		case <-e.done:
		}
	}()
	select {
	case <-e.done:
	case <-clientGone:
		_ = e.app.Kill()
		<-e.done
		return connect.NewError(connect.CodeCanceled, errors.New("the client went away; the app was killed"))
	case <-ctx.Done():
		_ = e.app.Kill()
		<-e.done
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	sendMu.Lock()
	defer sendMu.Unlock()
	return stream.Send(&v1.RunResponse{Msg: &v1.RunResponse_Exit{Exit: e.exitProto()}})
}

func (s *appService) Create(ctx context.Context, req *connect.Request[v1.CreateRequest]) (*connect.Response[v1.CreateResponse], error) {
	e, err := s.d.createApp(ctx, callFrom(ctx), req.Msg.GetSpec(), true, req.Msg.GetStart(), nil)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CreateResponse{App: e.proto()}), nil
}

func (s *appService) Start(ctx context.Context, req *connect.Request[v1.StartRequest]) (*connect.Response[v1.StartResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	if err := e.app.Start(); err != nil {
		if errors.Is(err, sandbox.ErrWrongState) {
			return nil, connect.NewError(connect.CodeFailedPrecondition, err)
		}
		e.finish()
		return nil, startError(err)
	}
	e.running()
	return connect.NewResponse(&v1.StartResponse{App: e.proto()}), nil
}

func (s *appService) Wait(ctx context.Context, req *connect.Request[v1.WaitRequest]) (*connect.Response[v1.WaitResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	if st := e.app.State(); st != sandbox.Running && st != sandbox.Exited && st != sandbox.Cleaned {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("app %s is %s: start it first", e.id, st))
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return connect.NewResponse(&v1.WaitResponse{Exit: e.exitProto()}), nil
}

func (s *appService) Signal(ctx context.Context, req *connect.Request[v1.SignalRequest]) (*connect.Response[v1.SignalResponse], error) {
	if err := checkSignal(req.Msg.GetSignal()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	e.emit(events.AppSignalled, callFrom(ctx).event, int64(req.Msg.GetSignal()), "")
	if err := e.app.Signal(syscall.Signal(req.Msg.GetSignal())); err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return connect.NewResponse(&v1.SignalResponse{}), nil
}

func (s *appService) Kill(ctx context.Context, req *connect.Request[v1.KillRequest]) (*connect.Response[v1.KillResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	e.emit(events.AppSignalled, callFrom(ctx).event, int64(syscall.SIGKILL), "kill")
	if st := e.app.State(); st == sandbox.Ready {
		e.finish()
	} else if err := e.app.Kill(); err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return connect.NewResponse(&v1.KillResponse{}), nil
}

func (s *appService) Stop(ctx context.Context, req *connect.Request[v1.StopRequest]) (*connect.Response[v1.StopResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	grace := e.app.Spec().StopTimeout
	if g := req.Msg.GetGrace(); g != nil {
		if err := g.CheckValid(); err != nil || g.AsDuration() < 0 || g.AsDuration() > time.Hour {
			return nil, connect.NewError(connect.CodeInvalidArgument, invalidf("grace: must be a duration between 0 and 1h"))
		}
		grace = g.AsDuration()
	}
	e.emit(events.AppSignalled, callFrom(ctx).event, int64(syscall.SIGTERM), "stop")
	switch e.app.State() {
	case sandbox.Running:
		if err := e.app.Stop(grace); err != nil && !errors.Is(err, sandbox.ErrWrongState) {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
	case sandbox.Ready:
		e.finish()
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return connect.NewResponse(&v1.StopResponse{Exit: e.exitProto()}), nil
}

func (s *appService) List(ctx context.Context, req *connect.Request[v1.ListRequest]) (*connect.Response[v1.ListResponse], error) {
	s.d.mu.Lock()
	apps := make([]*appEntry, 0, len(s.d.apps))
	for _, e := range s.d.apps {
		apps = append(apps, e)
	}
	s.d.mu.Unlock()
	sort.Slice(apps, func(i, j int) bool { return apps[i].created.Before(apps[j].created) })
	resp := &v1.ListResponse{}
	for _, e := range apps {
		if !req.Msg.GetAll() && e.isDone() {
			continue
		}
		resp.Apps = append(resp.Apps, e.proto())
	}
	return connect.NewResponse(resp), nil
}

func (s *appService) Inspect(ctx context.Context, req *connect.Request[v1.InspectRequest]) (*connect.Response[v1.InspectResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	a := e.proto()
	a.IpcObjects = s.d.ipcObjects(e.id)
	return connect.NewResponse(&v1.InspectResponse{App: a}), nil
}

func (s *appService) Stats(ctx context.Context, req *connect.Request[v1.StatsRequest]) (*connect.Response[v1.StatsResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	if e.isDone() {
		e.mu.Lock()
		u := e.usage
		e.mu.Unlock()
		return connect.NewResponse(&v1.StatsResponse{Usage: usageProto(u)}), nil
	}
	u, err := e.app.Usage()
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return connect.NewResponse(&v1.StatsResponse{Usage: usageProto(u)}), nil
}

func (s *appService) Logs(ctx context.Context, req *connect.Request[v1.LogsRequest], stream *connect.ServerStream[v1.LogsResponse]) error {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return err
	}
	if e.log == nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("app %s was run attached: its output went to its client, not to a log", e.id))
	}
	r := e.log.NewReader(req.Msg.GetFollow())
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, missed, err := r.ReadChunk(ctx, buf)
		if n > 0 || missed > 0 {
			if serr := stream.Send(&v1.LogsResponse{Data: append([]byte(nil), buf[:n]...), Dropped: missed}); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return connect.NewError(connect.CodeCanceled, ctx.Err())
			}
			return connect.NewError(connect.CodeInternal, err)
		}
	}
}

func (s *appService) Remove(ctx context.Context, req *connect.Request[v1.RemoveRequest]) (*connect.Response[v1.RemoveResponse], error) {
	e, err := s.d.lookup(req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	if !e.isDone() {
		if !req.Msg.GetForce() {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("app %s is %s: stop it first, or remove it with force", e.id, e.app.State()))
		}
		if e.app.State() == sandbox.Running {
			_ = e.app.Kill()
		} else {
			e.finish()
		}
		<-e.done
	}
	s.d.remove(e, callFrom(ctx).event)
	return connect.NewResponse(&v1.RemoveResponse{}), nil
}

// isDone reports whether the app has exited and been cleaned up.
func (e *appEntry) isDone() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func durationProto(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}
