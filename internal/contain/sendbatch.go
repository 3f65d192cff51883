package contain

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// quietBatch queues one nftables batch whose messages are sent without a
// request for an acknowledgement or an echo each. google/nftables' Flush
// asks the kernel to acknowledge every message (and to echo every rule)
// and reads those replies one by one, which costs more than the kernel's
// own work on an install batch. Like nft, quietBatch asks only for errors:
// the kernel processes a batch (and commits or aborts it) inside the
// sendmsg call and reports each failing message, or a failed commit, as a
// netlink error; success is silent. A GETGEN request sent after the batch
// on the same socket is the barrier: its reply comes after every error the
// batch caused, so "no error before the barrier's reply" means committed.
//
// The Conn it returns only queues (its messages are marshalled by
// google/nftables and captured, not sent); it must not be used to read.
type quietBatch struct {
	c        *nftables.Conn
	captured []netlink.Message
	errStop  error
}

func newQuietBatch() (*quietBatch, error) {
	b := &quietBatch{errStop: unix.ENOBUFS}
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if b.captured == nil {
			b.captured = req
		}
		// A syscall error that Flush returns at once, without reading
		// an acknowledgement per message.
		return nil, b.errStop
	}))
	if err != nil {
		return nil, fmt.Errorf("nftables batch: %w", err)
	}
	b.c = c
	return b, nil
}

// messages returns the batch queued on b.c, batch markers included, with
// the acknowledgement and echo requests cleared.
func (b *quietBatch) messages() ([]netlink.Message, error) {
	b.captured = nil
	err := b.c.Flush()
	if b.captured == nil {
		if err != nil {
			return nil, fmt.Errorf("nftables batch: %w", err)
		}
		return nil, nil // nothing queued
	}
	if !errors.Is(err, b.errStop) {
		return nil, fmt.Errorf("nftables batch: marshal: %v", err)
	}
	msgs := b.captured
	for i := range msgs {
		msgs[i].Header.Flags &^= netlink.Acknowledge | unix.NLM_F_ECHO
		msgs[i].Header.Sequence, msgs[i].Header.PID = 0, 0
	}
	return msgs, nil
}

// send commits the batch queued on b.c in the Manager's namespace and
// reports the first error the kernel returns for it.
func (m *Manager) send(b *quietBatch) error {
	msgs, err := b.messages()
	if err != nil || msgs == nil {
		return err
	}
	cfg := &netlink.Config{}
	if m.ns != nil {
		cfg.NetNS = int(m.ns.Fd())
	}
	nc, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nc.Close()
	if err := bigBuffers(nc); err != nil {
		return err
	}
	if _, err := nc.SendMessages(msgs); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	barrier, err := nc.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return fmt.Errorf("send barrier: %w", err)
	}
	for {
		replies, err := nc.Receive()
		if err != nil {
			// A netlink error for a message of the batch (or its
			// commit), or a failure to read: not known to be committed.
			return fmt.Errorf("batch: %w", err)
		}
		for _, r := range replies {
			if r.Header.Sequence == barrier.Header.Sequence {
				return nil
			}
		}
	}
}
