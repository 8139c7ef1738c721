// Submits the form_post response (OAuth 2.0 Form Post Response Mode) once
// the page has loaded; without JavaScript the page shows a button instead.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.forms[0];
  if (form) { form.submit(); }
});
