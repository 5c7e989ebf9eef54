/* models.c: the order the models start in. Access first (its merge
 * rules and the user's IoM group), then people (chats name people, trust
 * certifies their profiles), trust, channels and chats. */
#include "models/models.h"

#include "access/access.h"
#include "chat/chat.h"
#include "leute/leute.h"
#include "trust/trust.h"

int lama_models_rules(lama_session *s)
{
	lama_archive *a = lama_session_archive(s);
	int rc;

	if ((rc = lama_access_init(a)) || (rc = lama_leute_rules(a)))
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
