// "New Contacts Found" (seed 004 steps 6–10): the import review over /v1/contacts/review.
// Server-side pages of 50 (a stack of cursors gives Previous); every choice is saved at once;
// an answer (carried out in the background) is followed by polling until it is done;
// "Show declined" → "Bring back".
"use strict";

(function () {
  const { $, api, notice, requireSession, NO_SESSION } = window.crmsync;
  const REVIEW = "/v1/contacts/review";
  const PAGE = 50;
  //: How often the page asks for an import's progress while it runs (milliseconds).
  const POLL_MS = 1500;
  const ACTIONS = {
    "no-import": { button: "Proceed – No Import", confirm: "Decline them all" },
    "import-done": { button: "Import Selected – Done", confirm: "Import and finish" },
    "import-later": { button: "Import – Revisit Later", confirm: "Import the ticked ones" },
  };

  let choices = { contact_types: [], consent: [] };
  const offered = { cursors: [null], total: 0, items: [] };
  const declined = { cursors: [null], total: 0, items: [] };
  //: Rows shown during this visit (the confirmation says how many of the total were not).
  const seen = new Set();
  let pending = 0;
  let polling = null;
  let opener = null;

  function busy(delta) {
    pending += delta;
    document.body.dataset.pending = String(pending);
  }

  function failed(error) {
    if (error.status === 401) {
      for (const id of ["review-card", "answer-card", "declined-card", "import-card"]) $(id).hidden = true;
    }
    notice("error", error.message);
  }

  function nameOf(item) {
    return item.name || item.emails[0] || item.phones[0] || "(no name)";
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function fillDetails(row, item) {
    row.querySelector(".name").textContent = nameOf(item);
    row.querySelector(".emails").textContent = item.emails.join(", ");
    row.querySelector(".phones").textContent = item.phones.join(", ");
    row.querySelector(".organization").textContent = item.organization || "";
  }

  // "Not chosen" stays an option: a choice can be taken back.
  function fillSelect(select, options, value) {
    select.add(new Option("Not chosen", "", value === null, value === null));
    for (const option of options) select.add(new Option(option.label, option.id, false, option.id === value));
  }

  // Saves one choice of a row at once; on a refusal the control shows the saved value again.
  async function save(item, change, revert) {
    busy(1);
    try {
      Object.assign(item, await api("PATCH", REVIEW + "/" + encodeURIComponent(item.id), change));
    } catch (error) {
      revert();
      failed(error);
    } finally {
      busy(-1);
      markSelectAll();
    }
  }

  function renderOffered(item) {
    const row = $("review-row").content.firstElementChild.cloneNode(true);
    row.dataset.id = item.id;
    fillDetails(row, item);
    const pick = row.querySelector(".pick");
    pick.id = "pick-" + item.id;
    row.querySelector("label.who").htmlFor = pick.id;
    row.querySelector(".name").id = "name-" + item.id;
    pick.checked = item.selected;
    pick.addEventListener("change", () => {
      const was = item.selected;
      item.selected = pick.checked;
      markSelectAll();
      save(item, { selected: pick.checked }, () => {
        item.selected = was;
        pick.checked = was;
      });
    });
    const type = row.querySelector(".contact-type");
    const consent = row.querySelector(".consent");
    fillSelect(type, choices.contact_types, item.contact_type);
    fillSelect(consent, choices.consent, item.consent);
    for (const [select, field] of [[type, "contact_type"], [consent, "consent"]]) {
      select.setAttribute("aria-describedby", "name-" + item.id);
      select.addEventListener("change", () => {
        const was = item[field];
        save(item, { [field]: select.value || null }, () => {
          select.value = was === null ? "" : was;
        });
      });
    }
    return row;
  }

  function markSelectAll() {
    const box = $("select-page");
    const ticked = offered.items.filter((item) => item.selected).length;
    box.checked = offered.items.length > 0 && ticked === offered.items.length;
    box.indeterminate = ticked > 0 && ticked < offered.items.length;
  }

  function pageInfo(state, shown) {
    const first = (state.cursors.length - 1) * PAGE + 1;
    return shown ? "Rows " + first + "–" + (first + shown - 1) + " of " + state.total : "";
  }

  function renderReview(page) {
    offered.items = page.items;
    offered.total = page.total;
    offered.next = page.next_cursor;
    $("loading").hidden = true;
    $("total").textContent = plural(page.total, "contact", "contacts") + " to review";
    const empty = page.items.length === 0;
    $("empty").hidden = !empty;
    $("review-body").hidden = empty;
    $("answer-card").hidden = empty;
    $("rows").replaceChildren(...page.items.map(renderOffered));
    for (const item of page.items) seen.add(item.id);
    $("page-info").textContent = pageInfo(offered, page.items.length);
    $("previous").disabled = offered.cursors.length === 1;
    $("next").disabled = !page.next_cursor;
    markSelectAll();
  }

  function renderDeclined(page) {
    declined.items = page.items;
    declined.total = page.total;
    declined.next = page.next_cursor;
    $("declined-heading").textContent = "Declined contacts (" + page.total + ")";
    $("declined-empty").hidden = page.items.length > 0;
    $("declined-pager").hidden = page.items.length === 0;
    $("declined-rows").replaceChildren(
      ...page.items.map((item) => {
        const row = $("declined-row").content.firstElementChild.cloneNode(true);
        row.dataset.id = item.id;
        fillDetails(row, item);
        const back = row.querySelector(".bring-back");
        back.setAttribute("aria-label", "Bring back " + nameOf(item));
        back.addEventListener("click", () => bringBack(item, back));
        return row;
      })
    );
    $("declined-info").textContent = pageInfo(declined, page.items.length);
    $("declined-previous").disabled = declined.cursors.length === 1;
    $("declined-next").disabled = !page.next_cursor;
  }

  function query(status, cursor) {
    const params = new URLSearchParams({ status, limit: String(PAGE) });
    if (cursor) params.set("cursor", cursor);
    return REVIEW + "?" + params;
  }

  async function loadOffered() {
    const page = await api("GET", query("offered", offered.cursors[offered.cursors.length - 1]));
    // The rows of a page that became empty (answered elsewhere): back to the first page.
    if (page.items.length === 0 && offered.cursors.length > 1) {
      offered.cursors = [null];
      return loadOffered();
    }
    renderReview(page);
    showImport(page.last_import, false);
    return page;
  }

  async function loadDeclined() {
    const page = await api("GET", query("declined", declined.cursors[declined.cursors.length - 1]));
    if (page.items.length === 0 && declined.cursors.length > 1) {
      declined.cursors = [null];
      return loadDeclined();
    }
    renderDeclined(page);
  }

  async function go(state, load, step, button) {
    button.disabled = true;
    const before = state.cursors.slice();
    if (step > 0) state.cursors.push(state.next);
    else state.cursors.pop();
    try {
      await load();
    } catch (error) {
      state.cursors = before;
      button.disabled = false;
      failed(error);
    }
  }

  // ------------------------------------------------------------------ the import's progress
  function showImport(last, announce) {
    if (!last || (last.state === "done" && !announce && $("import-card").hidden)) return;
    const card = $("import-card");
    card.hidden = false;
    const bar = $("import-bar");
    bar.max = Math.max(last.total, 1);
    bar.value = last.state === "done" ? bar.max : last.done;
    card.dataset.state = last.state;
    if (last.state === "running") {
      // The job declines first (the total is about to change), then imports.
      const applying = last.declined === null && last.action !== "import-later";
      if (applying) $("total").textContent = "Applying your answer…";
      $("import-text").textContent = applying
        ? "Applying your answer…"
        : "Importing… " + last.done + " of " + last.total + " imported.";
      if (polling === null) polling = setTimeout(poll, POLL_MS);
      for (const id of ["answer-no-import", "answer-import-done", "answer-import-later"]) $(id).disabled = true;
      return;
    }
    for (const id of ["answer-no-import", "answer-import-done", "answer-import-later"]) $(id).disabled = false;
    $("import-text").textContent = resultText(last);
  }

  function resultText(last) {
    const imported = plural(last.done, "contact", "contacts") + " imported";
    const failedText = last.failed
      ? " " + plural(last.failed, "contact", "contacts") + " could not be imported and are still offered."
      : "";
    if (last.action === "no-import") return "Done: nothing was imported; the contacts found were declined.";
    if (last.action === "import-done") {
      return "Done: " + imported + "; the others were declined and will not be offered again." + failedText;
    }
    return "Done: " + imported + "; the others stay here and are offered again at the next sync." + failedText;
  }

  async function poll() {
    polling = null;
    try {
      const page = await api("GET", query("offered", null));
      if (page.last_import && page.last_import.state === "done") {
        offered.cursors = [null];
        renderReview(page);
        showImport(page.last_import, true);
        if (!$("declined").hidden) await loadDeclined();
        else await countDeclined();
      } else {
        showImport(page.last_import, true);
      }
    } catch (error) {
      failed(error);
      if (error.status !== 401) polling = setTimeout(poll, POLL_MS * 2);
    }
  }

  // ------------------------------------------------------------------ the three answers
  function question(action) {
    const unseen = Math.max(offered.total - seen.size, 0);
    const all = plural(offered.total, "contact", "contacts");
    const notSeen = unseen
      ? " That includes " + plural(unseen, "contact", "contacts") + " on pages you have not looked at."
      : "";
    if (action === "no-import") {
      return "Decline all " + all + " of the review? Nothing is imported and they are not offered again; " +
        "contacts added to Google later are." + notSeen;
    }
    if (action === "import-done") {
      return "Import the ticked contacts (on every page) and decline every other one of the " + all +
        "? Declined contacts are not offered again." + notSeen;
    }
    return "Import the ticked contacts (on every page)? The others of the " + all +
      " stay here and are offered again at the next sync." + notSeen;
  }

  function openConfirm(button) {
    const action = button.dataset.action;
    opener = button;
    $("confirm").dataset.action = action;
    $("confirm-question").textContent = question(action);
    $("confirm-yes").textContent = ACTIONS[action].confirm;
    $("confirm").hidden = false;
    $("confirm-no").focus(); // the safe choice first
  }

  function closeConfirm() {
    if ($("confirm-yes").disabled) return; // the answer is under way
    $("confirm").hidden = true;
    if (opener) opener.focus();
  }

  async function confirmAnswer() {
    const action = $("confirm").dataset.action;
    const yes = $("confirm-yes");
    yes.disabled = true;
    $("confirm-no").disabled = true;
    try {
      const record = await api("POST", REVIEW + "/answer", { action });
      yes.disabled = false;
      $("confirm-no").disabled = false;
      $("confirm").hidden = true;
      notice("ok", "Your answer “" + ACTIONS[action].button + "” was recorded.");
      showImport(record, true);
      if (record.state === "done") {
        offered.cursors = [null];
        await loadOffered();
        await countDeclined();
      }
      $("import-heading").focus();
    } catch (error) {
      yes.disabled = false;
      $("confirm-no").disabled = false;
      failed(error);
    }
  }

  // ------------------------------------------------------------------ declined rows
  async function countDeclined() {
    const page = await api("GET", REVIEW + "?status=declined&limit=1");
    $("declined-heading").textContent = "Declined contacts (" + page.total + ")";
    $("declined-card").hidden = false;
  }

  async function bringBack(item, button) {
    button.disabled = true;
    try {
      await api("POST", REVIEW + "/restore", { candidate_ids: [item.id] });
      notice("ok", nameOf(item) + " is back in the review.");
      await Promise.all([loadDeclined(), loadOffered()]);
    } catch (error) {
      button.disabled = false;
      failed(error);
    }
  }

  async function toggleDeclined() {
    const button = $("show-declined");
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "Hide declined" : "Show declined";
    $("declined").hidden = !open;
    if (open) {
      declined.cursors = [null];
      try {
        await loadDeclined();
      } catch (error) {
        failed(error);
      }
    }
  }

  // ------------------------------------------------------------------ wiring
  $("select-page").addEventListener("change", async () => {
    const box = $("select-page");
    const selected = box.checked;
    const ids = offered.items.map((item) => item.id);
    busy(1);
    try {
      await api("POST", REVIEW + "/select", { candidate_ids: ids, selected });
      for (const item of offered.items) item.selected = selected;
      for (const pick of $("rows").querySelectorAll(".pick")) pick.checked = selected;
    } catch (error) {
      failed(error);
    } finally {
      busy(-1);
      markSelectAll();
    }
  });
  $("next").addEventListener("click", () => go(offered, loadOffered, 1, $("next")));
  $("previous").addEventListener("click", () => go(offered, loadOffered, -1, $("previous")));
  $("declined-next").addEventListener("click", () => go(declined, loadDeclined, 1, $("declined-next")));
  $("declined-previous").addEventListener("click", () => go(declined, loadDeclined, -1, $("declined-previous")));
  for (const action of Object.keys(ACTIONS)) {
    $("answer-" + action).addEventListener("click", (event) => openConfirm(event.currentTarget));
  }
  $("confirm-yes").addEventListener("click", confirmAnswer);
  $("confirm-no").addEventListener("click", closeConfirm);
  $("confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeConfirm();
    }
  });
  $("show-declined").addEventListener("click", toggleDeclined);

  async function start() {
    busy(0);
    try {
      choices = await api("GET", "/v1/contact-types");
      await loadOffered();
      await countDeclined();
    } catch (error) {
      $("loading").hidden = true;
      failed(error);
    }
  }

  if (!requireSession()) {
    for (const id of ["review-card", "answer-card", "declined-card", "import-card"]) $(id).hidden = true;
    notice("error", NO_SESSION);
  } else {
    start();
  }
})();
