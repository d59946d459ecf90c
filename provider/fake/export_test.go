package fake

// HolderPID returns the pid of the process holding the server's mount
// namespace, 0 when there is none (for tests).
func HolderPID(s *Server) int {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if s.holder == nil {
		return 0
	}
	return s.holder.cmd.Process.Pid
}

// BaseHolderPID returns the pid of the process holding the provider's
// base namespace, 0 when there is none (for tests).
func BaseHolderPID(p *Provider) int {
	p.iso.baseMu.Lock()
	defer p.iso.baseMu.Unlock()
	if p.iso.base == nil {
		return 0
	}
	return p.iso.base.cmd.Process.Pid
}
