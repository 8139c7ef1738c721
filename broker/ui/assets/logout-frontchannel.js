// Continues a front-channel logout (OpenID Connect Front-Channel Logout
// 1.0) when a relying party's frame does not finish loading: the Refresh
// header continues only after every frame has loaded. Without JavaScript
// the page keeps its continue link.
(function () {
  var next = document.getElementById("continue");
  if (next) {
    setTimeout(function () { window.location.assign(next.href); }, 5000);
  }
})();
