// My Profile → Calendar Settings: connected calendars, linked calendar, conflict calendars,
// sync preferences — over /v1/calendars and /v1/settings (see common.js).
"use strict";

(function () {
  const { $, api, notice, requireSession } = window.crmsync;
  const STATUS = { connected: ["✔", "Connected"], needs_reauth: ["⚠", "Needs re-authorization"], error: ["✖", "Error"] };
  let state = { integrations: [], calendars: [], settings: null };

  const SYNC = { synced: "· synced", pending: "· first sync pending", off: "" };
  const key = (c) => c.connection_id + "\n" + c.calendar_id;

  function renderAccounts() {
    const box = $("accounts");
    box.replaceChildren();
    $("no-accounts").hidden = state.integrations.length > 0;
    for (const account of state.integrations) {
      const section = document.createElement("div");
      section.className = "account-block";
      section.dataset.email = account.email;
      section.dataset.status = account.status;
      const head = document.createElement("h3");
      const [icon, words] = STATUS[account.status] || ["?", account.status];
      head.innerHTML = '<span class="status-icon" aria-hidden="true"></span> <span class="email"></span> <span class="status-text"></span>';
      head.querySelector(".status-icon").textContent = icon;
      head.querySelector(".email").textContent = account.email;
      head.querySelector(".status-text").textContent = words;
      section.appendChild(head);
      const list = document.createElement("ul");
      list.className = "calendars";
      for (const c of state.calendars.filter((c) => c.connection_id === account.id)) {
        const row = $("calendar-row").content.firstElementChild.cloneNode(true);
        row.dataset.calendarId = c.calendar_id;
        row.querySelector(".swatch").style.background = c.color || "#ccc";
        row.querySelector(".name").textContent = c.name;
        row.querySelector(".tag").textContent = [c.primary ? "primary" : "", c.writable ? "" : "read-only"].filter(Boolean).join(", ");
        row.dataset.sync = c.sync.state;
        row.querySelector(".sync").textContent = SYNC[c.sync.state] || "";
        list.appendChild(row);
      }
      section.appendChild(list);
      box.appendChild(section);
    }
  }

  // Deletions the mass-deletion guard held back: the user applies or ignores them.
  const ANSWERED = {
    apply: "Applying the deletions…",
    ignore: "Keeping your CRM appointments…",
  };

  function renderHeld() {
    const box = $("held-deletions");
    box.replaceChildren();
    for (const c of state.calendars.filter((c) => c.pending_deletions)) {
      const held = c.pending_deletions;
      const row = $("held-row").content.firstElementChild.cloneNode(true);
      row.dataset.calendarId = c.calendar_id;
      row.querySelector(".held-text").textContent =
        "Google reports that " + held.deletions + " of " + held.mirrored + " events were deleted from " + c.name + "." +
        (held.decision ? " " + ANSWERED[held.decision] : "");
      for (const [selector, decision, message] of [
        [".held-apply", "apply", "The deletions will be applied."],
        [".held-ignore", "ignore", "Your CRM appointments are kept."],
      ]) {
        const button = row.querySelector(selector);
        button.disabled = Boolean(held.decision);
        button.addEventListener("click", () => answer(button, c, decision, message));
      }
      box.appendChild(row);
    }
  }

  async function answer(button, calendar, decision, message) {
    button.disabled = true;
    try {
      const body = { connection_id: calendar.connection_id, calendar_id: calendar.calendar_id };
      const updated = await api("POST", "/v1/calendars/pending-deletions/" + decision, body);
      state.calendars = state.calendars.map((c) => (key(c) === key(updated) ? updated : c));
      renderHeld();
      notice("ok", message);
    } catch (error) {
      notice("error", error.message);
      button.disabled = false;
    }
  }

  function renderLinked() {
    const linked = state.settings.linked_calendar;
    $("linked-current").textContent = linked ? linked.name + " (" + linked.account_email + ")" : "No linked calendar.";
    $("linked-add").textContent = linked ? "Change" : "Add";
    $("linked-remove").hidden = !linked;
    const accounts = $("linked-account");
    accounts.replaceChildren();
    for (const account of state.integrations.filter((a) => a.status === "connected")) {
      accounts.add(new Option(account.email, account.id));
    }
    fillCalendarChoices();
  }

  function fillCalendarChoices() {
    const select = $("linked-calendar");
    select.replaceChildren();
    for (const c of state.calendars.filter((c) => c.connection_id === $("linked-account").value && c.writable)) {
      select.add(new Option(c.name, c.calendar_id));
    }
  }

  function renderConflicts() {
    const box = $("conflict-list");
    box.replaceChildren();
    const chosen = new Set(state.settings.conflict_calendars.map(key));
    for (const c of state.calendars) {
      const label = document.createElement("label");
      label.className = "check";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = key(c);
      input.checked = chosen.has(key(c));
      label.append(input, " " + c.name + " — " + c.account_email);
      box.appendChild(label);
    }
  }

  function renderPreferences() {
    const p = state.settings.sync_preferences;
    for (const radio of document.querySelectorAll('input[name="direction"]')) radio.checked = radio.value === p.direction;
    $("external-deletion").value = p.external_deletion;
    $("days-back").value = p.window_days_back;
    $("days-ahead").value = p.window_days_ahead;
  }

  function render() {
    renderHeld();
    renderAccounts();
    renderLinked();
    renderConflicts();
    renderPreferences();
  }

  async function load() {
    const [integrations, calendars, settings] = await Promise.all([
      api("GET", "/v1/integrations"),
      api("GET", "/v1/calendars"),
      api("GET", "/v1/settings/calendar"),
    ]);
    state = { integrations: integrations.items, calendars: calendars.items, settings };
    render();
  }

  async function save(button, call, message) {
    button.disabled = true;
    try {
      state.settings = await call();
      render();
      notice("ok", message);
    } catch (error) {
      notice("error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  $("linked-add").addEventListener("click", () => { $("linked-form").hidden = false; $("linked-account").focus(); });
  $("linked-cancel").addEventListener("click", () => { $("linked-form").hidden = true; });
  $("linked-account").addEventListener("change", fillCalendarChoices);
  $("linked-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { connection_id: $("linked-account").value, calendar_id: $("linked-calendar").value };
    save($("linked-save"), () => api("PUT", "/v1/settings/linked-calendar", body), "Linked calendar saved.")
      .then(() => { $("linked-form").hidden = true; });
  });
  $("linked-remove").addEventListener("click", (event) =>
    save(event.target, () => api("DELETE", "/v1/settings/linked-calendar"), "The linked calendar was removed."));
  $("conflict-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const calendars = [...document.querySelectorAll("#conflict-list input:checked")].map((input) => {
      const [connection_id, calendar_id] = input.value.split("\n");
      return { connection_id, calendar_id };
    });
    save($("conflict-save"), () => api("PUT", "/v1/settings/conflict-calendars", { calendars }), "Conflict calendars saved.");
  });
  $("prefs-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {
      direction: document.querySelector('input[name="direction"]:checked').value,
      external_deletion: $("external-deletion").value,
      window_days_back: Number($("days-back").value),
      window_days_ahead: Number($("days-ahead").value),
    };
    save($("prefs-save"), () => api("PUT", "/v1/settings/sync-preferences", body), "Sync preferences saved.");
  });

  if (requireSession()) load().catch((error) => notice("error", error.message));
})();
