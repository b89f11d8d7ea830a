package provider

import "syscall"

// childAttr puts a function process in its own process group (so a Ctrl-C
// in the terminal reaches only the supervisor, which stops things in order)
// and has the kernel send it SIGTERM if the provider dies without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
