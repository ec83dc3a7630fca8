// Live updates from /v1/events (Server-Sent Events). The browser's EventSource
// resumes with Last-Event-ID by itself after a dropped connection; when the
// node was away long enough for the browser to give up (an error answer while
// it restarts), the stream is opened again from the last id seen.

const RETRY_MS = 2000;
const MAX_RETRY_MS = 30000;

export function followEvents(since, onEvent, onState) {
  let last = since;
  let source = null;
  let delay = RETRY_MS;
  let stopped = false;

  function open() {
    source = new EventSource(`/v1/events?since=${last}`, { withCredentials: true });
    source.onopen = () => { delay = RETRY_MS; onState("live"); };
    source.onmessage = (message) => handle(message);
    source.onerror = () => {
      onState("reconnecting");
      if (source.readyState === EventSource.CLOSED && !stopped) {
        setTimeout(() => { if (!stopped) open(); }, delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
    };
    // Named events (the event type is the SSE event name).
    const types = [
      "message.received", "message.status", "contact.request", "contact.added",
      "peer.online", "peer.offline", "message.reaction", "message.edited",
      "message.unsent", "message.expired", "message.deleted", "typing", "conversation.timer",
      "conversation.updated", "conversation.changed", "contact.blocked", "contact.unblocked", "media.progress", "media.ready",
      "media.failed", "location.live", "location.stopped", "demo.changed",
      "group.created", "group.changed", "group.removed", "gap", "requests_gap",
    ];
    for (const type of types) source.addEventListener(type, handle);
  }

  function handle(message) {
    if (message.lastEventId) last = Number(message.lastEventId) || last;
    let event = {};
    try { event = JSON.parse(message.data || "{}"); } catch (_) { return; }
    if (!event.type) event.type = message.type;
    onEvent(event);
  }

  open();
  return {
    stop() { stopped = true; if (source) source.close(); },
    get cursor() { return last; },
  };
}
