// SPDX-License-Identifier: MPL-2.0

//! The bounded queue between the clients' tasks and the element's input thread. Pointer moves
//! and resizes are coalesced (the latest wins), so a flood of moves costs one slot; clicks, keys
//! and application messages are kept in order. A client that fills the queue anyway is told so
//! and closed by its session, never queued without bound.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use gst_video::NavigationEvent;

use crate::input::Input;
use crate::protocol::ClientMessage;

/// Messages waiting for the input thread, all clients together.
pub(crate) const INBOX_MAX: usize = 1024;

#[derive(Default)]
struct State {
    items: VecDeque<(u64, ClientMessage)>,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    ready: Condvar,
}

fn is_move(msg: &ClientMessage) -> bool {
    matches!(
        msg,
        ClientMessage::Input(Input::Navigation(NavigationEvent::MouseMove { .. }))
    )
}

fn is_resize(msg: &ClientMessage) -> bool {
    matches!(msg, ClientMessage::Input(Input::Resize { .. }))
}

impl Inbox {
    /// Queues a message from `client`. Returns false when the queue is full (the message is
    /// dropped and the caller closes that client).
    pub fn push(&self, client: u64, msg: ClientMessage) -> bool {
        let mut st = self.state.lock().unwrap();
        if st.closed {
            return true;
        }
        // A move right after this client's last move replaces it (nothing in between to keep
        // the order of); a resize replaces the one still waiting, wherever it is.
        let slot = if is_move(&msg) {
            st.items
                .back_mut()
                .filter(|(c, m)| *c == client && is_move(m))
        } else if is_resize(&msg) {
            st.items
                .iter_mut()
                .find(|(c, m)| *c == client && is_resize(m))
        } else {
            None
        };
        if let Some(slot) = slot {
            slot.1 = msg;
            return true;
        }
        if st.items.len() >= INBOX_MAX {
            return false;
        }
        st.items.push_back((client, msg));
        drop(st);
        self.ready.notify_one();
        true
    }

    /// The next message, waiting for one; None once closed.
    pub fn pop(&self) -> Option<(u64, ClientMessage)> {
        let mut st = self.state.lock().unwrap();
        loop {
            if st.closed {
                return None;
            }
            if let Some(item) = st.items.pop_front() {
                return Some(item);
            }
            st = self.ready.wait(st).unwrap();
        }
    }

    /// Wakes the input thread for good; what is still queued is dropped.
    pub fn close(&self) {
        let mut st = self.state.lock().unwrap();
        st.closed = true;
        st.items.clear();
        drop(st);
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_video::{NavigationEvent as E, NavigationModifierType};

    fn mv(x: f64) -> ClientMessage {
        ClientMessage::Input(Input::Navigation(E::MouseMove {
            x,
            y: 0.0,
            modifier_state: NavigationModifierType::empty(),
        }))
    }

    fn click() -> ClientMessage {
        ClientMessage::Input(Input::Navigation(E::MouseButtonPress {
            button: 1,
            x: 0.0,
            y: 0.0,
            modifier_state: NavigationModifierType::empty(),
        }))
    }

    #[test]
    fn moves_coalesce_clicks_keep_order_and_the_queue_is_bounded() {
        let inbox = Inbox::default();
        for i in 0..10_000 {
            assert!(inbox.push(1, mv(i as f64)));
        }
        assert!(inbox.push(1, click()));
        assert!(inbox.push(1, mv(1.0)));
        assert!(inbox.push(2, mv(2.0)));
        let got: Vec<_> = (0..4).map(|_| inbox.pop().unwrap()).collect();
        assert_eq!(got[0], (1, mv(9999.0)), "10000 moves became the last one");
        assert_eq!(got[1], (1, click()));
        assert_eq!(got[2], (1, mv(1.0)));
        assert_eq!(got[3], (2, mv(2.0)));
        for _ in 0..INBOX_MAX {
            assert!(inbox.push(1, click()));
        }
        assert!(!inbox.push(1, click()), "full: refused, not queued");
        inbox.close();
        assert_eq!(inbox.pop(), None);
    }

    #[test]
    fn resizes_coalesce_per_client() {
        let inbox = Inbox::default();
        let resize = |w| {
            ClientMessage::Input(Input::Resize {
                width: w,
                height: 10,
            })
        };
        inbox.push(1, resize(100));
        inbox.push(1, click());
        inbox.push(2, resize(5));
        inbox.push(1, resize(300));
        assert_eq!(inbox.pop().unwrap(), (1, resize(300)));
        assert_eq!(inbox.pop().unwrap(), (1, click()));
        assert_eq!(inbox.pop().unwrap(), (2, resize(5)));
    }
}
