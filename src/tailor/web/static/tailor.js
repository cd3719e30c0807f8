// Light progressive enhancement: the pages work without it.
document.addEventListener("DOMContentLoaded", function () {
  // move focus to the error summary or the result so keyboard and screen-reader users land on it
  var auto = document.querySelector("[autofocus]");
  var target = document.getElementById("error-summary") || document.getElementById("result");
  if (target) { target.focus(); } else if (auto && document.activeElement !== auto) { auto.focus(); }
  // a randomization form can be submitted once (the server is idempotent anyway)
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  });
});
