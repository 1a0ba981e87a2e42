// erasure dashboard: confirm actions, and keep verifying the audit trail while its page is open.
"use strict";
document.addEventListener("submit", function (e) {
  var b = e.submitter;
  var msg = b && b.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) e.preventDefault();
});
document.addEventListener("DOMContentLoaded", function () {
  var el = document.querySelector("[data-refresh]");
  if (el) setTimeout(function () { location.reload(); }, 1000 * Number(el.getAttribute("data-refresh")));
});
