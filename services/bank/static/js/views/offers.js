// Offers, live: each card says where, which sector, when, pay, distance, urgency, how
// long is left to answer and why it came to you.

import { ApiError, api } from "../api.js";
import { h, replace, uid } from "../dom.js";
import { distance, pay, sector, words } from "../labels.js";
import { countdown, duration, isLate, londonTime, range } from "../time.js";

const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live: new offers appear here straight away.",
  reconnecting: "Reconnecting… offers will update when the connection is back.",
  idle: "Not connected.",
};

export function render(main, ctx) {
  const live = ctx.live;
  // Answers given on this screen, kept so a card can say what happened next.
  const answered = new Map();
  const list = h("div", { class: "offer-list", "aria-busy": String(!live.received) });
  const statusLine = h("p", { class: "live-status", "data-status": live.status }, h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "live-text" }));

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Offers"),
    statusLine,
    list,
  );

  function showStatus() {
    statusLine.dataset.status = live.status;
    statusLine.querySelector(".live-text").textContent = STATUS_TEXT[live.status] ?? "";
  }

  function draw(added = []) {
    list.setAttribute("aria-busy", String(!live.received));
    const fresh = new Set(added.map((o) => o.offer_id));
    const cards = [];
    for (const [id, item] of answered) {
      if (!live.offers.some((o) => o.offer_id === id)) cards.push(answeredCard(item));
    }
    for (const offer of live.offers) {
      if (answered.has(offer.offer_id)) {
        cards.push(answeredCard(answered.get(offer.offer_id)));
      } else {
        cards.push(existing.get(offer.offer_id) ?? offerCard(offer, fresh.has(offer.offer_id)));
      }
    }
    if (!live.received) {
      replace(list, h("p", { class: "loading" }, "Looking for offers…"));
      return;
    }
    if (!cards.length) {
      replace(
        list,
        h(
          "div",
          { class: "empty panel" },
          h("h2", {}, "No offers right now"),
          h("p", {}, "When a session matches time you’ve offered, it appears here straight away – no need to refresh."),
          h("a", { class: "button secondary", href: "#/week" }, "Offer more time"),
        ),
      );
      return;
    }
    replace(list, cards);
    tick();
  }

  // Cards are kept between updates so a half-finished answer isn't lost.
  const existing = new Map();

  function offerCard(offer, isNew) {
    const titleId = uid("offer");
    const starts = new Date(offer.starts_at);
    const ends = new Date(offer.ends_at);
    const countdownEl = h("span", { class: "countdown", "data-expires": offer.expires_at });
    const actions = h("div", { class: "actions" });
    const message = h("p", { class: "card-message", role: "status" });
    const card = h(
      "article",
      {
        class: `card offer${isNew ? " is-new" : ""}`,
        "aria-labelledby": titleId,
        "data-testid": "offer-card",
        "data-offer-id": offer.offer_id,
      },
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: titleId, class: "card-title" }, offer.site_name),
        h(
          "span",
          { class: `badge ${offer.urgency === "urgent" ? "urgent" : "routine"}` },
          offer.urgency === "urgent" ? "Urgent" : "Routine",
        ),
      ),
      h("p", { class: "card-sub" }, `${sector(offer.sector)} · ${words(offer.role)} · ${offer.organisation}`),
      h(
        "dl",
        { class: "facts" },
        fact("When (UK time)", h("span", { "data-testid": "when" }, range(offer.starts_at, offer.ends_at)), h("span", { class: "muted" }, ` (${duration(ends - starts)})`), "wide"),
        fact("Pay", pay(offer.rate_pence_per_hour)),
        fact("Distance", h("span", { "data-testid": "distance" }, `${distance(offer.distance_km)} away`)),
        fact("Answer by", `${londonTime(new Date(offer.expires_at))} · `, countdownEl, "wide"),
      ),
      offer.reasons?.length
        ? h(
            "div",
            { class: "why" },
            h("h3", {}, "Why you"),
            h("ul", { "data-testid": "reasons" }, offer.reasons.map((r) => h("li", {}, r))),
          )
        : null,
      message,
      actions,
    );

    function choose() {
      replace(
        actions,
        h("button", { type: "button", class: "primary", onclick: confirmAccept }, "Accept"),
        h("button", { type: "button", class: "secondary", onclick: confirmDecline }, "Decline"),
      );
    }

    function confirmAccept() {
      const late = isLate(offer.starts_at);
      replace(
        actions,
        h(
          "div",
          { class: "confirm", role: "group", "aria-label": "Confirm accepting" },
          h(
            "p",
            {},
            `Accept ${offer.site_name}, ${range(offer.starts_at, offer.ends_at)}? `,
            late
              ? "It starts within 48 hours: cancelling later would count as late."
              : "You can cancel later from Bookings; within 48 hours of the start it counts as late.",
          ),
          h("button", { type: "button", class: "primary", onclick: () => answer("accept") }, "Yes, accept"),
          h("button", { type: "button", class: "secondary", onclick: back }, "Not yet"),
        ),
      );
      actions.querySelector("button").focus();
    }

    function confirmDecline() {
      replace(
        actions,
        h(
          "div",
          { class: "confirm", role: "group", "aria-label": "Confirm declining" },
          h("p", {}, "Decline this offer? It goes to someone else and can’t be undone."),
          h("button", { type: "button", class: "danger", onclick: () => answer("decline") }, "Yes, decline"),
          h("button", { type: "button", class: "secondary", onclick: back }, "Not yet"),
        ),
      );
      actions.querySelector("button").focus();
    }

    function back() {
      choose();
      actions.querySelector("button").focus();
    }

    async function answer(kind) {
      for (const b of actions.querySelectorAll("button")) b.disabled = true;
      message.textContent = kind === "accept" ? "Accepting…" : "Declining…";
      try {
        await api(`/api/offers/${offer.offer_id}/${kind}`, { method: "POST" });
        answered.set(offer.offer_id, { offer, kind, ok: true });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if ([404, 409, 410].includes(error.status)) {
          answered.set(offer.offer_id, { offer, kind, ok: false, text: error.explanation });
        } else {
          message.textContent = error.explanation;
          choose();
          return;
        }
      }
      existing.delete(offer.offer_id);
      live.forget(offer.offer_id);
      draw();
      list.querySelector(`[data-offer-id="${offer.offer_id}"] .card-title`)?.focus();
    }

    choose();
    existing.set(offer.offer_id, card);
    return card;
  }

  function answeredCard({ offer, kind, ok, text }) {
    const titleId = uid("answered");
    let body;
    if (ok && kind === "accept") {
      body = [
        h("p", { class: "result ok" }, "Accepted. The practice is confirming the booking."),
        h("p", {}, "It will show as booked under ", h("a", { href: "#/bookings" }, "Bookings"), "."),
      ];
    } else if (ok) {
      body = [h("p", { class: "result" }, "Declined. The session goes to someone else.")];
    } else {
      body = [h("p", { class: "result problem" }, text)];
    }
    return h(
      "article",
      { class: "card answered", "aria-labelledby": titleId, "data-testid": "answered-card", "data-offer-id": offer.offer_id },
      h("h2", { id: titleId, class: "card-title", tabindex: "-1" }, offer.site_name),
      h("p", { class: "card-sub" }, range(offer.starts_at, offer.ends_at)),
      body,
      h(
        "button",
        {
          type: "button",
          class: "link-button",
          onclick: () => {
            answered.delete(offer.offer_id);
            draw();
          },
        },
        "Dismiss",
      ),
    );
  }

  function tick() {
    const now = Date.now();
    for (const el of list.querySelectorAll(".countdown")) {
      const left = new Date(el.dataset.expires).getTime() - now;
      const text = left > 0 ? `${countdown(left)} left` : "Expired";
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("soon", left < 15 * 60_000);
      if (left <= 0) {
        const card = el.closest(".card");
        for (const b of card.querySelectorAll(".actions button")) b.disabled = true;
      }
    }
  }

  const onChange = (event) => {
    // Drop cards of offers no longer open, keep the others as they are.
    const open = new Set(live.offers.map((o) => o.offer_id));
    for (const id of existing.keys()) if (!open.has(id)) existing.delete(id);
    draw(event.detail.first ? [] : event.detail.added);
  };
  const onStatus = () => showStatus();
  live.addEventListener("change", onChange);
  live.addEventListener("status", onStatus);
  showStatus();
  draw();
  const timer = setInterval(tick, 1000);
  return () => {
    clearInterval(timer);
    live.removeEventListener("change", onChange);
    live.removeEventListener("status", onStatus);
  };
}

function fact(label, ...rest) {
  const wide = rest.at(-1) === "wide";
  const content = wide ? rest.slice(0, -1) : rest;
  return h("div", { class: wide ? "fact wide" : "fact" }, h("dt", {}, label), h("dd", {}, content));
}
