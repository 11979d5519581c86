// Package deploy holds pinfold's deployment files and the test that checks
// them; it has no Go API.
//
//   - systemd/pinfold.service: the daemon as a systemd service, with its
//     cgroup subtree delegated (Delegate=yes).
//   - kubernetes/daemonset.yaml: the daemon as a privileged DaemonSet, with
//     its Namespace and a ConfigMap of policies.
//
// deploy_test.go parses both and checks what the daemon relies on: the
// flags `pinfold daemon` accepts, delegation, the stop sequence, the socket
// and policy paths, the privileged container and its mounts, and that every
// shipped policy validates. docs/operating.md explains the choices.
package deploy
