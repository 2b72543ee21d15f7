// Live offers: one EventSource for the whole app while signed in.

import { api } from "./api.js";

/**
 * Holds the open offers the server last sent. Fires "change" when they change and
 * "status" when the connection does ("connecting", "live", "reconnecting").
 */
export class LiveOffers extends EventTarget {
  constructor() {
    super();
    this.offers = [];
    this.status = "idle";
    this.received = false;
    this.source = null;
    this.retryTimer = 0;
  }

  start() {
    if (this.source) return;
    this.setStatus("connecting");
    const source = new EventSource("/api/offers/stream");
    this.source = source;
    source.addEventListener("offers", (event) => {
      let offers;
      try {
        offers = JSON.parse(event.data);
      } catch {
        return;
      }
      const before = new Set(this.offers.map((o) => o.offer_id));
      const added = offers.filter((o) => !before.has(o.offer_id));
      const first = !this.received;
      this.offers = offers;
      this.received = true;
      this.setStatus("live");
      this.dispatchEvent(
        new CustomEvent("change", { detail: { added: first ? [] : added, first } }),
      );
    });
    source.addEventListener("open", () => this.setStatus("live"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. the session ended): find out why, retry.
        this.source = null;
        this.setStatus("reconnecting");
        api("/api/me")
          .then(() => this.retryLater())
          .catch(() => this.retryLater());
      } else {
        this.setStatus("reconnecting"); // the browser reconnects by itself
      }
    });
  }

  retryLater() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.status !== "idle") this.start();
    }, 5000);
  }

  stop() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
    this.offers = [];
    this.received = false;
    this.setStatus("idle");
    this.dispatchEvent(new CustomEvent("change", { detail: { added: [], first: true } }));
  }

  /** Take an answered offer off the list at once (the stream catches up later). */
  forget(offerId) {
    const kept = this.offers.filter((o) => o.offer_id !== offerId);
    if (kept.length === this.offers.length) return;
    this.offers = kept;
    this.dispatchEvent(new CustomEvent("change", { detail: { added: [], first: false } }));
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }
}
