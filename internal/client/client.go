// Package client connects to a pinfold daemon: it parses --host /
// PINFOLD_HOST (unix:///run/pinfold/pinfold.sock), dials the unix socket
// with HTTP/2 without TLS (the Run stream is bidirectional), and returns
// the API's service clients. It holds no command-line logic.
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/pinfold/pinfold/api/pinfold/v1/pinfoldv1connect"
)

// EnvHost is the environment variable that names the daemon, like --host.
const EnvHost = "PINFOLD_HOST"

// Client holds the daemon's service clients.
type Client struct {
	Apps     pinfoldv1connect.AppServiceClient
	Policies pinfoldv1connect.PolicyServiceClient
	Events   pinfoldv1connect.EventServiceClient
	System   pinfoldv1connect.SystemServiceClient

	transport *http.Transport
}

// SocketPath parses a host: "unix:///path/to.sock", or a plain absolute
// path.
func SocketPath(host string) (string, error) {
	if strings.HasPrefix(host, "/") {
		return host, nil
	}
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "unix" || u.Path == "" || u.Host != "" {
		return "", fmt.Errorf("host %q: use unix:///path/to/pinfold.sock", host)
	}
	return u.Path, nil
}

// Dial prepares clients for the daemon at host; it does not connect until
// the first call.
func Dial(host string) (*Client, error) {
	path, err := SocketPath(host)
	if err != nil {
		return nil, err
	}
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols: protocols,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		// Never used over a unix socket; set so nothing tries TLS.
		TLSClientConfig:     &tls.Config{},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	hc := &http.Client{Transport: tr}
	// The host part of the URL is not used to route: the dialer always
	// connects to the socket.
	const base = "http://pinfold"
	// gRPC over h2c; no compression (pointless over a unix socket).
	opts := connect.WithClientOptions(connect.WithGRPC(), connect.WithAcceptCompression("gzip", nil, nil))
	return &Client{
		Apps:      pinfoldv1connect.NewAppServiceClient(hc, base, opts),
		Policies:  pinfoldv1connect.NewPolicyServiceClient(hc, base, opts),
		Events:    pinfoldv1connect.NewEventServiceClient(hc, base, opts),
		System:    pinfoldv1connect.NewSystemServiceClient(hc, base, opts),
		transport: tr,
	}, nil
}

// Close drops idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }
