// Light progressive enhancement: the pages work without it.
document.addEventListener("DOMContentLoaded", function () {
  // move focus to the error summary or the result so keyboard and screen-reader users land on it
  var target = document.getElementById("error-summary") || document.getElementById("result");
  if (target && !document.querySelector("[autofocus]")) { target.focus(); }
  // a randomization form can be submitted once (the server is idempotent anyway)
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  });
});
