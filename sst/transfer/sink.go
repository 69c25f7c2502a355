package transfer

// SinkOptions configure a Sink.
type SinkOptions struct {
	// AllowSymlinks lets the donor create symlinks whose target stays
	// inside the root; otherwise any symlink is refused.
	AllowSymlinks bool
	// NoSync skips the syncfs at the end of Serve.
	NoSync bool
}

// Sink writes received files under a root directory and nowhere else:
// absolute names, ".." components and symlinks leading out are refused
// (the tree is opened with os.Root).
type Sink struct {
	root string
	o    SinkOptions
}

// OpenSink opens root, which must exist, as the destination of a Serve.
func OpenSink(root string, o SinkOptions) (*Sink, error) { return nil, errTODO }

// Root is the directory files go into.
func (k *Sink) Root() string { return k.root }

// Close closes the root.
func (k *Sink) Close() error { return nil }
