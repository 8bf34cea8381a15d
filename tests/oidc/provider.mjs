// A local OpenID Connect provider for the studio's single sign-on test: panva's oidc-provider, the
// certified Node.js implementation, with its development sign-in pages (any login name signs in).
// PORT: where it listens; REDIRECT: the studio's /oauth2callback (a sign-out returns there too);
// one client, "conceptlab".
import Provider from "oidc-provider";
const port = Number(process.env.PORT);
const redirect = process.env.REDIRECT;
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{ client_id: "conceptlab", client_secret: "test-secret", redirect_uris: [redirect], post_logout_redirect_uris: [redirect], grant_types: ["authorization_code"], response_types: ["code"] }],
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, email: `${id}@example.org`, email_verified: true, name: id }; } };
  },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  pkce: { required: () => false },
  // The e-mail in the ID token itself, as the big providers send it (Streamlit reads the ID token only).
  conformIdTokenClaims: false,
});
provider.listen(port, () => console.log(`oidc-provider listening on ${port}`));
