/* models.c: the order the models start in. Access first (its merge
 * rules and the user's IoM group), then people (chats name people, trust
 * certifies their profiles), trust, channels and chats. */
#include "models/models.h"

#include "access/access.h"
#include "chat/chat.h"
#include "leute/leute.h"
#include "trust/trust.h"

/* Leute's rules as lama_leute_init registers them (it cannot register
 * them without also creating the user's people, which needs their keys);
 * tests/unit/worker/test_warchive.c merges these types both ways. To do
 * in src/leute: a lama_leute_rules(archive) that both call. */
static int leute_rules(lama_archive *a)
{
	static const char *const bags[][2] = {
		{ "Profile", "personDescription" }, { "Profile", "communicationEndpoint" },
		{ "Leute", "other" }, { "Leute", "group" },
	};
	int rc;

	for (size_t i = 0; i < sizeof(bags) / sizeof(bags[0]); i++)
		if ((rc = lama_archive_set_rule(a, bags[i][0], bags[i][1], LAMA_CRDT_SET)))
			return rc;
	return lama_archive_set_unindexed(a, "Leute");
}

int lama_models_rules(lama_session *s)
{
	lama_archive *a = lama_session_archive(s);
	int rc;

	if ((rc = lama_access_init(a)) || (rc = leute_rules(a)))
		return rc;
	/* chat's init registers rules only (channels' included) */
	return lama_chat_init(s);
}

int lama_models_init(lama_session *s)
{
	int rc;

	if ((rc = lama_access_init(lama_session_archive(s))))
		return rc;
	/* the user's own devices: the group everything personal is shared with */
	if ((rc = lama_access_iom_ensure(lama_session_archive(s), lama_session_person(s), NULL)))
		return rc;
	if ((rc = lama_leute_init(s)))
		return rc;
	if ((rc = lama_trust_setup(s)))
		return rc;
	return lama_chat_init(s);
}
