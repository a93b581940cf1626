// Relative URL, so the docs work behind a path prefix too. No online
// validator: the page must not reach out to the network.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  persistAuthorization: true,
  deepLinking: true,
});
