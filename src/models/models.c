/* models.c: the order the models start in. People first (chats name
 * people, trust certifies their profiles), then trust, channels and
 * chats. */
#include "models/models.h"

#include "chat/chat.h"
#include "leute/leute.h"
#include "trust/trust.h"

int lama_models_init(lama_session *s)
{
	int rc;

	if ((rc = lama_leute_init(s)))
		return rc;
	if ((rc = lama_trust_setup(s)))
		return rc;
	return lama_chat_init(s);
}
