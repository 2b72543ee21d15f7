// Giving a booking up properly, and explaining why time that is booked can't be taken back.

import { ApiError, api } from "../api.js";
import { field, formMessage, h, openDialog, uid } from "../dom.js";
import { range, isLate } from "../time.js";

// The API's reason categories, in the clinician's words. The practice is told the
// category; what the clinician writes reaches it only if they tick the box.
const REASONS = {
  illness: "I’m unwell",
  family_emergency: "A family or caring emergency",
  transport: "A travel or transport problem",
  main_employer: "My main employer needs me",
  another_commitment: "Another commitment",
  other: "Something else",
};
const TEXT_MAX = 500;

/**
 * Ask why (a category, perhaps some words, and whether the practice may read them) and
 * cancel the booking. Resolves {late} once cancelled, or null if the clinician kept it.
 */
export function cancelBooking(booking, { lateSoFar = null } = {}) {
  const titleId = uid("cancel");
  const late = isLate(booking.starts_at);
  return openDialog(
    (close) => {
      const category = field({
        name: "category",
        label: "Why are you cancelling?",
        hint: "The practice is told this.",
        control: h(
          "select",
          { required: true },
          h("option", { value: "" }, "Choose a reason"),
          Object.entries(REASONS).map(([value, label]) => h("option", { value }, label)),
        ),
      });
      const text = field({
        name: "text",
        label: "Anything to add? (optional)",
        type: "textarea",
        hint: `Up to ${TEXT_MAX} characters. Kept with your booking; the practice reads it only if you tick the box below.`,
        attrs: { rows: "3", maxlength: String(TEXT_MAX) },
      });
      const shareId = uid("share");
      const shareHintId = `${shareId}-hint`;
      const share = h("input", {
        type: "checkbox",
        id: shareId,
        name: "share_text_with_practice",
        "aria-describedby": shareHintId,
      });
      const shareBox = h(
        "div",
        { class: "check" },
        share,
        h(
          "label",
          { for: shareId },
          "Share what I wrote with the practice",
          h("span", { class: "hint", id: shareHintId }, "Otherwise they see only the reason you chose."),
        ),
      );
      const fields = { category, text };
      const message = formMessage();
      const confirm = h("button", { type: "submit", class: "danger" }, "Cancel booking");
      async function submit(event) {
        event.preventDefault();
        category.setError(null);
        text.setError(null);
        message.clear();
        if (!category.input.value) {
          category.setError("Choose a reason.");
          category.input.focus();
          return;
        }
        const words = text.input.value.trim();
        confirm.disabled = true;
        try {
          const result = await api(`/api/bookings/${booking.offer_id}/cancel`, {
            method: "POST",
            body: {
              category: category.input.value,
              text: words || null,
              share_text_with_practice: Boolean(words) && share.checked,
            },
          });
          close({ late: Boolean(result?.late) });
        } catch (error) {
          confirm.disabled = false;
          if (!(error instanceof ApiError)) throw error;
          const named = error.errors.filter((e) => fields[e.field]);
          for (const e of named) fields[e.field].setError(e.message);
          if (named.length) fields[named[0].field].input.focus();
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
        category.el,
        text.el,
        shareBox,
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
