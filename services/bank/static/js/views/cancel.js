// Giving a booking up properly, and explaining why time that is booked can't be taken back.

import { ApiError, api } from "../api.js";
import { field, formMessage, h, openDialog, uid } from "../dom.js";
import { range, isLate } from "../time.js";

/**
 * Ask for a reason and cancel the booking. Resolves {late} once cancelled, or null
 * if the clinician kept it.
 */
export function cancelBooking(booking, { lateSoFar = null } = {}) {
  const titleId = uid("cancel");
  const late = isLate(booking.starts_at);
  return openDialog(
    (close) => {
      const reason = field({
        name: "reason",
        label: "Why are you cancelling?",
        type: "textarea",
        hint: "The practice is told. A few words are enough, e.g. “I’m unwell”.",
        attrs: { rows: "3", maxlength: "500", required: true },
      });
      const message = formMessage();
      const confirm = h("button", { type: "submit", class: "danger" }, "Cancel booking");
      async function submit(event) {
        event.preventDefault();
        reason.setError(null);
        message.clear();
        const text = reason.input.value.trim();
        if (text.length < 3) {
          reason.setError("Give a reason of at least 3 characters.");
          reason.input.focus();
          return;
        }
        confirm.disabled = true;
        try {
          const result = await api(`/api/bookings/${booking.offer_id}/cancel`, {
            method: "POST",
            body: { reason: text },
          });
          close({ late: Boolean(result?.late) });
        } catch (error) {
          confirm.disabled = false;
          if (!(error instanceof ApiError)) throw error;
          const forReason = error.errors.find((e) => e.field === "reason");
          if (forReason) reason.setError(forReason.message);
          else message.show(error.explanation);
        }
      }
      return h(
        "form",
        { class: "dialog-body", novalidate: true, onsubmit: submit },
        h("h2", { id: titleId }, "Cancel this booking?"),
        h(
          "p",
          { class: "booking-line" },
          h("strong", {}, booking.site_name),
          h("br"),
          range(booking.starts_at, booking.ends_at),
        ),
        late
          ? h(
              "div",
              { class: "warning", "data-testid": "late-warning" },
              h("p", { class: "warning-title" }, "This will count as a late cancellation"),
              h(
                "p",
                {},
                "It starts within 48 hours, so the practice has little time to find someone else." +
                  " Late cancellations are recorded on your profile" +
                  (lateSoFar != null ? ` (you have ${lateSoFar} so far).` : "."),
              ),
            )
          : h(
              "p",
              { class: "hint" },
              "It starts more than 48 hours from now, so this is not a late cancellation.",
            ),
        message.el,
        reason.el,
        h(
          "div",
          { class: "actions" },
          confirm,
          h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Keep booking"),
        ),
      );
    },
    { labelledBy: titleId },
  ).then((value) => value ?? null);
}

/** The booking ids a 409 "you are booked then" answer names. */
function conflictingBookings(error) {
  const found = [];
  for (const { message } of error.errors) {
    const match = String(message).match(/\/api\/bookings\/([0-9a-f-]{36})\/cancel/i);
    found.push({ offerId: match ? match[1] : null, message: String(message) });
  }
  return found;
}

/**
 * Explain a 409 from taking time back: which bookings need that time, with a button
 * to cancel each properly. Resolves true if any booking was cancelled.
 */
export function explainConflict(error, { lateSoFar = null, toast } = {}) {
  const titleId = uid("conflict");
  const items = conflictingBookings(error);
  let cancelledAny = false;
  return openDialog(
    (close) => {
      const list = h("ul", { class: "conflicts" });
      for (const item of items) {
        const row = h("li", {}, h("p", {}, "Loading the booking…"));
        list.append(row);
        fill(row, item);
      }
      async function fill(row, item) {
        if (!item.offerId) {
          row.replaceChildren(h("p", {}, item.message));
          return;
        }
        let booking;
        try {
          booking = await api(`/api/offers/${item.offerId}`);
        } catch {
          row.replaceChildren(
            h("p", {}, item.message),
            h("a", { href: "#/bookings", onclick: () => close(false) }, "See your bookings"),
          );
          return;
        }
        const button = h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: async () => {
              const result = await cancelBooking(booking, { lateSoFar });
              if (!result) return;
              cancelledAny = true;
              row.replaceChildren(
                h("p", {}, h("strong", {}, booking.site_name), h("br"), range(booking.starts_at, booking.ends_at)),
                h("p", { class: "done" }, result.late ? "Cancelled (counted as late)." : "Cancelled."),
              );
              toast?.(result.late ? "Booking cancelled. It counts as a late cancellation." : "Booking cancelled.");
            },
          },
          "Cancel this booking…",
        );
        row.replaceChildren(
          h("p", {}, h("strong", {}, booking.site_name), h("br"), range(booking.starts_at, booking.ends_at)),
          button,
        );
      }
      return h(
        "div",
        { class: "dialog-body", "data-testid": "conflict" },
        h("h2", { id: titleId }, "You’re booked during this time"),
        h(
          "p",
          {},
          "To take this time back, first cancel the booking in it. The practice is told why," +
            " and if it starts within 48 hours it counts as a late cancellation.",
        ),
        list,
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "secondary", onclick: () => close(cancelledAny) }, "Close"),
        ),
      );
    },
    { labelledBy: titleId },
  ).then(() => cancelledAny);
}
